"""Device actions over the API, with the console's permissions and checks (management/actions.py):

    POST /api/v1/devices/{id}/actions/{name}/      one device
    POST /api/v1/devices/actions/{name}/           {"devices": [ids], ...} several devices
    GET  /api/v1/devices/{id}/configuration/       the device's settings from its groups and their state

The parameters of each action are those of its console form (management/console_forms.py)."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from mdmportal.api import ConsolePermissions
from mdmportal.console import client_ip
from enrollment.models import Device

from . import actions
from .console_forms import FORMS
from .models import DeviceSettingState

MAX_DEVICES = 500


class ActionPermission(BasePermission):
    """Staff, and the action's own permission (wipe, retire and custom commands have theirs)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        action = actions.ACTIONS.get(view.kwargs.get("name"))
        if action is None:
            raise NotFound("No such action.")
        return user.has_perm(action.permission)


class CommandSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    device = serializers.IntegerField(source="device_id")
    verb = serializers.CharField()
    target = serializers.CharField()
    status = serializers.CharField()


class ReportSerializer(serializers.Serializer):
    action = serializers.CharField()
    queued = CommandSerializer(many=True)
    retired = serializers.ListField(child=serializers.IntegerField())
    released = serializers.ListField(child=serializers.IntegerField())
    skipped = serializers.ListField(child=inline_serializer("SkippedDevice", {
        "device": serializers.IntegerField(), "reason": serializers.CharField()}))
    delivery = serializers.CharField()


class DeviceActionView(APIView):
    permission_classes = [ActionPermission]

    @extend_schema(
        operation_id="device_action", request=OpenApiTypes.OBJECT, responses={202: ReportSerializer, 200: ReportSerializer},
        description="Actions: sync, reboot, wipe (mode, confirmation), retire (immediately), rename (name, reboot), "
                    "custom (verb, target, format, type, data), release (the next enrollment of the hardware "
                    "replaces the device, whoever enrolls). The bulk route takes \"devices\": [ids].")
    def post(self, request, name, pk=None):
        if pk is not None:
            devices = [get_object_or_404(Device, pk=pk)]
        else:
            ids = request.data.get("devices")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
                raise ValidationError({"devices": "Give a non-empty list of device ids."})
            if len(ids) > MAX_DEVICES:
                raise ValidationError({"devices": f"At most {MAX_DEVICES} devices per request."})
            devices = list(Device.objects.filter(pk__in=ids))
            missing = set(ids) - {d.pk for d in devices}
            if missing:
                raise ValidationError({"devices": f"Unknown device ids: {sorted(missing)}."})
        params = {k: v for k, v in request.data.items() if k != "devices"}
        form = FORMS[name](params, devices=devices)
        if not form.is_valid():
            raise ValidationError(form.errors.get_json_data(escape_html=False))
        try:
            report = actions.run(name, devices, request.user, ip=client_ip(request), via="api", **form.cleaned_data)
        except actions.ActionRefused as refusal:
            raise ValidationError({"detail": str(refusal)}) from None
        except DjangoPermissionDenied as denied:
            raise PermissionDenied(str(denied)) from None
        return Response({
            "action": name,
            "queued": CommandSerializer(report.queued, many=True).data,
            "retired": [device.pk for device in report.retired],
            "released": [device.pk for device in report.released],
            "skipped": [{"device": device.pk, "reason": reason} for device, reason in report.skipped],
            "delivery": f"Without push, devices pick commands up at their next poll: {actions.poll_schedule()}.",
        }, status=status.HTTP_202_ACCEPTED if report.queued else status.HTTP_200_OK)


class BulkDeviceActionView(DeviceActionView):
    @extend_schema(operation_id="devices_bulk_action", request=OpenApiTypes.OBJECT,
                   responses={202: ReportSerializer, 200: ReportSerializer})
    def post(self, request, name):
        return super().post(request, name)


class SettingStateSerializer(serializers.ModelSerializer):
    group = serializers.PrimaryKeyRelatedField(read_only=True)
    state = serializers.CharField(read_only=True)
    failure = serializers.CharField(read_only=True)
    command = serializers.PrimaryKeyRelatedField(read_only=True)
    status_code = serializers.IntegerField(source="command.status_code", read_only=True, default=None)

    class Meta:
        model = DeviceSettingState
        fields = ["loc_uri", "label", "format", "value", "group", "state", "failure", "status_code", "command",
                  "updated_at"]


class DeviceConfigurationView(APIView):
    permission_classes = [ConsolePermissions]
    queryset = Device.objects.all()  # ConsolePermissions: view_device to read

    @extend_schema(responses=SettingStateSerializer(many=True))
    def get(self, request, pk):
        device = get_object_or_404(Device, pk=pk)
        states = device.setting_states.select_related("command")
        return Response(SettingStateSerializer(states, many=True).data)
