"""Read-only JSON API for enrolled devices: /api/v1/devices/ (the console's permissions)."""
from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.routers import SimpleRouter

from .models import Device, DeviceCommand


class DeviceSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Device
        fields = ["id", "device_id", "hw_dev_id", "name", "kind", "status", "user", "upn", "method",
                  "enrollment_type", "os_version", "os_edition", "certificate_serial", "certificate_thumbprint",
                  "certificate_not_after", "revoked_at", "replaced_by", "context_items", "enrolled_at",
                  "last_seen_at", "unenrolled_at", "login_status", "manufacturer", "model", "serial_number",
                  "os_platform", "architecture", "total_ram_mb", "hardware_data", "inventory_at"]
        read_only_fields = fields


class DeviceCommandSerializer(serializers.ModelSerializer):
    queued_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = DeviceCommand
        fields = ["id", "device", "verb", "target", "format", "type", "data", "status", "status_code", "result_data",
                  "result_format", "note", "queued_by", "source", "created_at", "sent_at", "completed_at",
                  "expires_at", "attempts"]
        read_only_fields = fields


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Device.objects.select_related("user").order_by("-enrolled_at", "-pk")
    serializer_class = DeviceSerializer
    action_permissions = {"commands": ["enrollment.view_device", "enrollment.view_devicecommand"]}

    @action(detail=True, methods=["get"], serializer_class=DeviceCommandSerializer)
    def commands(self, request, pk=None):
        """The device's command queue and history, newest first; `?status=queued` filters."""
        device = self.get_object()
        queryset = device.commands.select_related("queued_by").order_by("-pk")
        status = request.query_params.get("status")
        if status:
            queryset = queryset.filter(status=status)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeviceCommandSerializer(page, many=True).data)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "commands":
            return queryset  # its query parameters filter the commands, not the devices
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
urlpatterns = [path("", include(router.urls))]
