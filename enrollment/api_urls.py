"""The enrollment app's routes of the JSON API: its one router (devices, provisioning-package PIN
enrollments). mdmportal/api_urls.py includes them under /api/v1/."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("devices", api.DeviceViewSet, basename="device")
router.register("pin-enrollments", api.PinEnrollmentViewSet, basename="pin-enrollment")

urlpatterns = [
    path("", include(router.urls)),
]
