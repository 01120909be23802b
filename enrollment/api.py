"""Read-only JSON API for enrolled devices: /api/v1/devices/ (the console's permissions)."""
from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from . import api_actions, api_configuration
from .models import Device


class DeviceSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Device
        fields = ["id", "device_id", "hw_dev_id", "name", "kind", "status", "user", "upn", "method",
                  "enrollment_type", "os_version", "os_edition", "certificate_serial", "certificate_thumbprint",
                  "certificate_not_after", "revoked_at", "replaced_by", "context_items", "enrolled_at",
                  "last_seen_at"]
        read_only_fields = fields


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Device.objects.select_related("user").order_by("-enrolled_at", "-pk")
    serializer_class = DeviceSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        for name in ("kind", "status", "method", "enrollment_type"):
            value = self.request.query_params.get(name)
            if value:
                queryset = queryset.filter(**{name: value})
        user = self.request.query_params.get("user")
        if user:
            queryset = queryset.filter(user__email__iexact=user)
        return queryset


router = SimpleRouter()
router.register("devices", DeviceViewSet, basename="device")
router.register("configuration-groups", api_configuration.ConfigurationGroupViewSet, basename="configuration-group")
router.register("configuration-settings", api_configuration.GroupSettingViewSet, basename="configuration-setting")
urlpatterns = [
    path("devices/actions/<slug:name>/", api_actions.BulkDeviceActionView.as_view(), name="device-bulk-action"),
    path("devices/<int:pk>/actions/<slug:name>/", api_actions.DeviceActionView.as_view(), name="device-action"),
    path("devices/<int:pk>/configuration/", api_actions.DeviceConfigurationView.as_view(),
         name="device-configuration"),
    path("configuration-catalogue/", api_configuration.CatalogueView.as_view(), name="configuration-catalogue"),
    path("", include(router.urls)),
]
