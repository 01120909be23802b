"""The autopilot app's routes of the JSON API: its one router. mdmportal/api_urls.py includes them
under /api/v1/autopilot/."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("profiles", api.ProfileViewSet, basename="autopilot-profile")
router.register("essential-apps", api.EssentialAppViewSet, basename="autopilot-essential-app")
router.register("imports", api.DeviceImportViewSet, basename="autopilot-import")
router.register("devices", api.AutopilotDeviceViewSet, basename="autopilot-device")
router.register("assignments", api.AssignmentViewSet, basename="autopilot-assignment")
router.register("provisioning", api.ProvisioningViewSet, basename="autopilot-provisioning")
router.register("app-installs", api.AppInstallViewSet, basename="autopilot-app-install")

urlpatterns = [
    path("", include(router.urls)),
]
