"""The management app's routes of the JSON API: its one router (configuration groups and settings) and
the views that are not a collection (a device's commands, device actions, the device's configuration,
the configuration catalogue). mdmportal/api_urls.py includes them under /api/v1/."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, api_actions, api_configuration

router = SimpleRouter()
router.register("configuration-groups", api_configuration.ConfigurationGroupViewSet, basename="configuration-group")
router.register("configuration-settings", api_configuration.GroupSettingViewSet, basename="configuration-setting")

urlpatterns = [
    path("devices/actions/<slug:name>/", api_actions.BulkDeviceActionView.as_view(), name="device-bulk-action"),
    path("devices/<int:pk>/actions/<slug:name>/", api_actions.DeviceActionView.as_view(), name="device-action"),
    path("devices/<int:pk>/commands/", api.DeviceCommandsView.as_view(), name="device-commands"),
    path("devices/<int:pk>/configuration/", api_actions.DeviceConfigurationView.as_view(),
         name="device-configuration"),
    path("configuration-catalogue/", api_configuration.CatalogueView.as_view(), name="configuration-catalogue"),
    path("", include(router.urls)),
]
