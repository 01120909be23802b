"""JSON API of the management app, with the console's permissions: a device's command queue and
history (/api/v1/devices/{id}/commands/). Device actions: api_actions.py; configuration groups and
settings: api_configuration.py; the routes: api_urls.py."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import BasePermission

from enrollment.models import Device

from .models import DeviceCommand


class DeviceCommandSerializer(serializers.ModelSerializer):
    queued_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = DeviceCommand
        fields = ["id", "device", "verb", "target", "format", "type", "data", "status", "status_code", "result_data",
                  "result_format", "note", "queued_by", "source", "created_at", "sent_at", "completed_at",
                  "expires_at", "attempts"]
        read_only_fields = fields


class MayViewCommands(BasePermission):
    """Staff who may view devices and their commands."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff
                    and user.has_perms(["enrollment.view_device", "management.view_devicecommand"]))


class DeviceCommandsView(generics.ListAPIView):
    """The device's command queue and history, newest first; `?status=queued` filters."""

    serializer_class = DeviceCommandSerializer
    permission_classes = [MayViewCommands]

    @extend_schema(operation_id="devices_commands_list", parameters=[
        OpenApiParameter("status", str, enum=DeviceCommand.Status.values, description="Only the commands in this state.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        device = get_object_or_404(Device, pk=self.kwargs["pk"])
        queryset = device.commands.select_related("queued_by").order_by("-pk")
        status = self.request.query_params.get("status")
        if status:
            queryset = queryset.filter(status=status)
        return queryset
