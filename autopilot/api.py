"""The Autopilot JSON API under /api/v1/autopilot/ (the console's permissions, ConsolePermissions):
profiles (with their offline file), essential apps, imports (upload → 202, report), devices (pending
or enrolled, effective profile and why, CSV export), assignments, and each enrolled device's setup
(provisioning: the Enrollment Status Page's items) and app installs. Same domain code as the console.

Configuration groups are given by name (profiles' `configuration_groups`: a list of existing group
names); an unknown name is a 400 that names it.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.audit import AuditedViewSetMixin
from management.models import ConfigurationGroup
from mdmportal.console import client_ip

from . import assignment, imports, offline
from .models import (AppInstall, AutopilotDevice, AutopilotEnrollment, DeviceImport, EssentialApp, GroupTagRule,
                     ImportRow, Profile, ProvisioningItem)


def _with_changes(model, instance, attrs):
    """An unsaved copy of `instance` (or a new object) with `attrs` applied, for the model's checks."""
    obj = model()
    if instance is not None:
        for field in model._meta.concrete_fields:
            setattr(obj, field.attname, getattr(instance, field.attname))
        obj._state.adding = False
    for name, value in attrs.items():
        setattr(obj, name, value)
    return obj


def model_errors(exc):
    return serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


class EssentialAppSerializer(serializers.ModelSerializer):
    class Meta:
        model = EssentialApp
        fields = ["id", "profile", "name", "kind", "msi_url", "product_code", "sha256", "version", "command_line",
                  "store_id", "package_family_name", "store_sku", "store_claim_seat"]

    def validate(self, attrs):
        app = _with_changes(EssentialApp, self.instance, attrs)
        try:
            app.clean()
        except DjangoValidationError as exc:
            raise model_errors(exc) from None
        # clean() normalises: the hash and SKU upper-cased, a family name given as Store id moved to its field.
        for name in ("sha256", "store_id", "package_family_name", "store_sku"):
            if name in attrs or getattr(self.instance, name, "") != getattr(app, name):
                attrs[name] = getattr(app, name)
        return attrs


class ProfileSerializer(serializers.ModelSerializer):
    group_tags = serializers.ListField(child=serializers.CharField(max_length=128), required=False, write_only=True,
                                       help_text="Devices imported with one of these tags get this profile")
    configuration_groups = serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=ConfigurationGroup.objects.all(),
        help_text="Names of the configuration groups the profile's devices join (the groups must exist).")
    essential_apps = EssentialAppSerializer(many=True, read_only=True)

    class Meta:
        model = Profile
        fields = ["id", "name", "description", "device_type", "deployment_mode", "allow_pre_provisioning", "join_type",
                  "user_account_type", "hide_eula", "hide_privacy_settings", "hide_change_account_options", "language",
                  "configure_keyboard", "device_name_template", "convert_all_targeted_devices",
                  "autopilot_update_during_oobe", "tenant_lockdown", "configuration_groups", "esp_enabled",
                  "esp_timeout_minutes", "esp_block_device", "esp_allow_reset", "esp_allow_retry",
                  "esp_allow_continue", "esp_fail_on", "app_stall_minutes", "app_retry_count", "app_stall_blocks",
                  "is_default", "group_tags", "essential_apps",
                  "ztd_correlation_id", "created_at", "updated_at"]
        read_only_fields = ["ztd_correlation_id", "created_at", "updated_at"]

    def to_representation(self, profile):
        data = super().to_representation(profile)
        data["group_tags"] = [rule.tag for rule in profile.group_tags.all()]
        return data

    def validate_group_tags(self, tags):
        cleaned, seen = [], set()
        for tag in (t.strip() for t in tags):
            if tag and tag.lower() not in seen:
                seen.add(tag.lower())
                cleaned.append(tag)
        same = Q()
        for tag in cleaned:
            same |= Q(tag__iexact=tag)
        taken = GroupTagRule.objects.filter(same) if cleaned else GroupTagRule.objects.none()
        if self.instance is not None:
            taken = taken.exclude(profile=self.instance)
        clash = taken.select_related("profile").first()
        if clash:
            raise serializers.ValidationError(f"Group tag {clash.tag} already leads to profile {clash.profile}.")
        return cleaned

    def validate(self, attrs):
        tags = attrs.pop("group_tags", None)
        groups = attrs.pop("configuration_groups", None)
        profile = _with_changes(Profile, self.instance, attrs)
        try:
            profile.clean()
            profile.validate_constraints()
        except DjangoValidationError as exc:
            raise model_errors(exc) from None
        if tags is not None:
            attrs["_group_tags"] = tags
        if groups is not None:
            attrs["configuration_groups"] = list(dict.fromkeys(groups))
        return attrs

    def _save_tags(self, profile, tags):
        if tags is None:
            return
        profile.group_tags.all().delete()
        GroupTagRule.objects.bulk_create([GroupTagRule(profile=profile, tag=tag) for tag in tags])

    def create(self, validated_data):
        tags = validated_data.pop("_group_tags", None)
        with transaction.atomic():
            profile = super().create(validated_data)
            self._save_tags(profile, tags)
        return profile

    def update(self, instance, validated_data):
        tags = validated_data.pop("_group_tags", None)
        with transaction.atomic():
            profile = super().update(instance, validated_data)
            self._save_tags(profile, tags)
        return profile


class ProfileViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Profile.objects.prefetch_related("group_tags", "essential_apps", "configuration_groups").order_by("name")
    serializer_class = ProfileSerializer

    @extend_schema(responses={(200, "application/json"): bytes, 409: None},
                   description="The profile's AutopilotConfigurationFile.json (ASCII), as a download.")
    @action(detail=True, methods=["get"], url_path="offline-file")
    def offline_file(self, request, pk=None):
        profile = self.get_object()
        try:
            content = offline.configuration_file(profile)
        except offline.TenantNotConfigured as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        response = HttpResponse(content, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{offline.FILE_NAME}"'
        return response


class EssentialAppViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = EssentialApp.objects.select_related("profile").order_by("profile__name", "name")
    serializer_class = EssentialAppSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        profile = self.request.query_params.get("profile")
        return queryset.filter(profile_id=profile) if profile and profile.isdigit() else queryset


class DeviceImportSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = DeviceImport
        fields = ["id", "file_name", "file_size", "status", "error", "total_rows", "processed_rows", "percent",
                  "created_count", "updated_count", "unchanged_count", "failed_count", "uploaded_by", "created_at",
                  "started_at", "finished_at"]
        read_only_fields = fields


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The CSV file Windows produces")


class ImportRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportRow
        fields = ["line", "serial_number", "result", "message", "device"]


class DeviceImportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = DeviceImport.objects.select_related("uploaded_by").order_by("-created_at", "-pk")
    serializer_class = DeviceImportSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={202: DeviceImportSerializer})
    def create(self, request, *args, **kwargs):
        upload = UploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        device_import = imports.create_import(upload.validated_data["file"], actor=request.user, ip=client_ip(request))
        device_import.refresh_from_db()
        return Response(DeviceImportSerializer(device_import).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=ImportRowSerializer(many=True))
    @action(detail=True, methods=["get"])
    def rows(self, request, pk=None):
        """The import's report, line by line; `?result=failed` for the refused lines only."""
        device_import = self.get_object()
        rows = device_import.rows.order_by("line")
        result = request.query_params.get("result")
        if result:
            rows = rows.filter(result=result)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ImportRowSerializer(page, many=True).data)


class AutopilotDeviceSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    effective_profile = serializers.SerializerMethodField()
    effective_profile_reason = serializers.SerializerMethodField()
    profile_assigned_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = AutopilotDevice
        fields = ["id", "serial_number", "product_id", "hardware_hash", "group_tag", "assigned_user", "ztd_id",
                  "state", "profile", "profile_assigned_by", "profile_assigned_at", "effective_profile",
                  "effective_profile_reason", "created_at", "updated_at"]
        read_only_fields = ["serial_number", "product_id", "hardware_hash", "profile", "profile_assigned_by",
                            "profile_assigned_at", "created_at", "updated_at"]

    def _assignment(self, device):
        cache = self.context.setdefault("assignments", {})
        if device.pk not in cache:
            resolver = self.context.get("resolver") or assignment.Resolver()
            self.context["resolver"] = resolver
            cache[device.pk] = resolver(device)
        return cache[device.pk]

    def get_state(self, device) -> str:
        return device.enrollment_state

    def get_effective_profile(self, device) -> int | None:
        found = self._assignment(device)
        return found.profile.pk if found.profile else None

    def get_effective_profile_reason(self, device) -> str:
        return self._assignment(device).reason


class AutopilotDeviceViewSet(AuditedViewSetMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                             viewsets.ReadOnlyModelViewSet):
    queryset = AutopilotDevice.objects.with_state().select_related("profile", "profile_assigned_by").order_by("serial_key")
    serializer_class = AutopilotDeviceSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        params = self.request.query_params
        state = params.get("state")
        if state in ("pending", "enrolled"):
            queryset = queryset.filter(is_enrolled=state == "enrolled")
        if params.get("group_tag"):
            queryset = queryset.filter(group_tag__iexact=params["group_tag"])
        if params.get("profile", "").isdigit():
            queryset = queryset.filter(profile_id=params["profile"])
        if params.get("serial"):
            queryset = queryset.filter(serial_key__contains=params["serial"].strip().upper())
        return queryset

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=False, methods=["get"])
    def export(self, request):
        """The (filtered) devices as Windows' CSV."""
        response = StreamingHttpResponse(imports.export_lines(self.get_queryset()), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="autopilot-devices.csv"'
        return response


class AssignmentSerializer(serializers.Serializer):
    profile = serializers.PrimaryKeyRelatedField(queryset=Profile.objects.all(), allow_null=True,
                                                 help_text="The profile, or null to clear the explicit selection")
    devices = serializers.PrimaryKeyRelatedField(queryset=AutopilotDevice.objects.all(), many=True,
                                                 allow_empty=False)


class AssignmentResultSerializer(serializers.Serializer):
    assigned = serializers.IntegerField()


class AssignmentViewSet(viewsets.GenericViewSet):
    """Explicitly assign a profile to devices (it wins over group tags and the default profile)."""

    queryset = AutopilotDevice.objects.all()
    serializer_class = AssignmentSerializer
    action_permissions = {"create": ["autopilot.change_autopilotdevice"]}

    @extend_schema(responses=AssignmentResultSerializer)
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = assignment.assign(serializer.validated_data["devices"], serializer.validated_data["profile"],
                                  actor=request.user, ip=client_ip(request))
        return Response({"assigned": count})


class ProvisioningItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProvisioningItem
        fields = ["kind", "phase", "key", "label", "state", "detail", "completed_at"]


class AppInstallSerializer(serializers.ModelSerializer):
    stalled = serializers.BooleanField(read_only=True, help_text=(
        "Found with no progress past its profile's stall time: waiting for the install sent again (state "
        "stalled), or given up after its retries (state failed)"))

    class Meta:
        model = AppInstall
        fields = ["id", "device", "app", "name", "kind", "identifier", "state", "reported_status", "last_error",
                  "polls", "attempts", "progress_at", "stalled", "stalled_at", "created_at", "updated_at",
                  "completed_at"]


class ProvisioningSerializer(serializers.ModelSerializer):
    """An Autopilot enrollment and where its Enrollment Status Page stands."""

    profile_name = serializers.CharField(source="profile.name", default=None, read_only=True)
    expected = serializers.SerializerMethodField()
    done = serializers.SerializerMethodField()
    failed = serializers.SerializerMethodField()
    items = ProvisioningItemSerializer(many=True, read_only=True)
    app_installs = AppInstallSerializer(source="device.app_installs", many=True, read_only=True)
    # Later users skip the account-setup page: the SkipUserStatusPage command's status (queued, sent,
    # succeeded…), null until the server queued it.
    skip_user_page = serializers.CharField(source="skip_user_page_command.status", default=None, read_only=True)
    stalled_apps = serializers.SerializerMethodField(help_text="Its app installs found stalled (see app_installs)")

    class Meta:
        model = AutopilotEnrollment
        fields = ["id", "device", "record", "matched_by", "profile", "profile_name", "profile_reason", "applied_at",
                  "esp_state", "expected", "done", "failed", "esp_started_at", "esp_deadline", "esp_finished_at",
                  "esp_acknowledged_at", "esp_note", "user_esp_state", "user_esp_started_at", "user_esp_deadline",
                  "user_esp_finished_at", "user_esp_acknowledged_at", "user_esp_note", "skip_user_page", "items",
                  "app_installs", "stalled_apps", "created_at"]

    def get_expected(self, link) -> int:
        return link.counts()["expected"]

    def get_done(self, link) -> int:
        return link.counts()["done"]

    def get_failed(self, link) -> int:
        return link.counts()["failed"]

    def get_stalled_apps(self, link) -> int:
        return sum(1 for install in link.device.app_installs.all() if install.stalled)


class ProvisioningViewSet(viewsets.ReadOnlyModelViewSet):
    """Each Autopilot device's setup: `?state=tracking|succeeded|failed|timed_out` (device phase),
    `?user_state=` (account setup: Store apps once a user signed in), `?device=<id>` and `?stalled=true`
    (a stalled app install) filter."""

    queryset = (AutopilotEnrollment.objects.select_related("profile", "skip_user_page_command")
                .prefetch_related("items", "device__app_installs").order_by("-created_at", "-pk"))
    serializer_class = ProvisioningSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        params = self.request.query_params
        if params.get("state"):
            queryset = queryset.filter(esp_state=params["state"])
        if params.get("user_state"):
            queryset = queryset.filter(user_esp_state=params["user_state"])
        if params.get("device", "").isdigit():
            queryset = queryset.filter(device_id=params["device"])
        if params.get("stalled") in ("true", "false"):
            stalled = Exists(AppInstall.objects.filter(AppInstall.stalled_q(), device=OuterRef("device")))
            queryset = queryset.filter(stalled if params["stalled"] == "true" else ~stalled)
        return queryset


class AppInstallViewSet(viewsets.ReadOnlyModelViewSet):
    """Essential apps on devices: `?device=<id>`, `?app=<id>`, `?state=`, `?stalled=true|false` filter."""

    queryset = AppInstall.objects.order_by("-created_at", "-pk")
    serializer_class = AppInstallSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        params = self.request.query_params
        for name in ("device", "app"):
            if params.get(name, "").isdigit():
                queryset = queryset.filter(**{f"{name}_id": params[name]})
        if params.get("state"):
            queryset = queryset.filter(state=params["state"])
        if params.get("stalled") in ("true", "false"):
            queryset = queryset.filter(AppInstall.stalled_q()) if params["stalled"] == "true" else queryset.exclude(
                AppInstall.stalled_q())
        return queryset

