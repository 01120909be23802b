"""Configuration groups, their settings and memberships over the API (the console's permissions):

    /api/v1/configuration-groups/                 CRUD; devices (ids) and users (emails) are the
                                                  hand and user memberships, rule_* the rule
    /api/v1/configuration-groups/{id}/members/    GET effective members and per-setting compliance
    /api/v1/configuration-groups/{id}/membership/ POST {"add_devices": [], "remove_devices": [],
                                                  "add_users": [], "remove_users": []}
    /api/v1/configuration-settings/               CRUD of group settings (catalogue key or raw OMA-URI)
    /api/v1/configuration-catalogue/              GET the named settings

Every change is audited and reconciles the devices it affects after commit."""
import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import AuditedViewSetMixin
from accounts.models import User
from mdmportal.api import ConsolePermissions
from enrollment.models import Device

from . import catalogue, reconcile
from .models import ConfigurationGroup, GroupSetting


class GroupSettingSerializer(serializers.ModelSerializer):
    group = serializers.PrimaryKeyRelatedField(queryset=ConfigurationGroup.objects.all())
    label = serializers.CharField(read_only=True)
    key = serializers.ChoiceField(choices=[k for k, _ in catalogue.choices()], required=False, allow_blank=True)
    loc_uri = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    format = serializers.CharField(max_length=8, required=False, allow_blank=True)

    class Meta:
        model = GroupSetting
        fields = ["id", "group", "key", "label", "loc_uri", "format", "value", "verb", "removal", "reset_value",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators = []  # uniqueness is checked below, with the catalogue's LocURI filled in

    def validate(self, data):
        instance = copy.copy(self.instance) if self.instance is not None else GroupSetting()
        for name, value in data.items():
            setattr(instance, name, value)
        if instance.key:
            entry = catalogue.CATALOGUE.get(instance.key)
            instance.loc_uri, instance.format = entry.loc_uri, entry.format
        try:
            instance.full_clean()
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None
        return {f: getattr(instance, f) for f in ("group", "key", "loc_uri", "format", "value", "verb", "removal",
                                                    "reset_value")}


class ConfigurationGroupSerializer(serializers.ModelSerializer):
    devices = serializers.PrimaryKeyRelatedField(many=True, required=False, queryset=Device.objects.all())
    users = serializers.SlugRelatedField(many=True, required=False, slug_field="email", queryset=User.objects.all())
    settings = GroupSettingSerializer(many=True, read_only=True)

    class Meta:
        model = ConfigurationGroup
        fields = ["id", "name", "description", "priority", "devices", "users", "rule_enabled", "rule_kind",
                  "rule_os_version_prefix", "rule_method", "rule_enrollment_type", "rule_name_pattern", "settings",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class AuditedReconcilingViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    """Saves, audits, and reconciles the group the object belongs to after commit."""

    permission_classes = [ConsolePermissions]

    def group_of(self, obj):
        raise NotImplementedError

    def perform_create(self, serializer):
        with transaction.atomic():
            super().perform_create(serializer)
            reconcile.schedule_group(self.group_of(serializer.instance))

    def perform_update(self, serializer):
        with transaction.atomic():
            before = reconcile.affected_by(self.group_of(serializer.instance))
            super().perform_update(serializer)
            reconcile.schedule_devices(before | reconcile.affected_by(self.group_of(serializer.instance)))

    def perform_destroy(self, instance):
        with transaction.atomic():
            reconcile.schedule_group(self.group_of(instance))
            super().perform_destroy(instance)


class ConfigurationGroupViewSet(AuditedReconcilingViewSet):
    queryset = ConfigurationGroup.objects.prefetch_related("devices", "users", "settings")
    serializer_class = ConfigurationGroupSerializer
    action_permissions = {"members": ["management.view_configurationgroup"],
                          "membership": ["management.change_configurationgroup"]}

    def group_of(self, obj):
        return obj

    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        group = self.get_object()
        reasons = group.member_reasons()
        return Response({
            "members": [{"device": pk, "reason": reason} for pk, reason in sorted(reasons.items())],
            "compliance": [{"setting": setting.pk, "label": setting.label, **counts}
                           for setting, counts in reconcile.compliance(group)],
        })

    @action(detail=True, methods=["post"])
    def membership(self, request, pk=None):
        group = self.get_object()
        changes = {}
        for key, model, field in (("add_devices", Device, "pk"), ("remove_devices", Device, "pk"),
                                  ("add_users", User, "email"), ("remove_users", User, "email")):
            values = request.data.get(key, [])
            if not isinstance(values, list):
                raise ValidationError({key: "Give a list."})
            found = list(model.objects.filter(**{f"{field}__in": values}))
            missing = set(values) - {getattr(o, field) for o in found}
            if missing:
                raise ValidationError({key: f"Unknown: {sorted(map(str, missing))}."})
            changes[key] = found
        with transaction.atomic():
            before = reconcile.affected_by(group)
            group.devices.add(*changes["add_devices"])
            group.devices.remove(*changes["remove_devices"])
            group.users.add(*changes["add_users"])
            group.users.remove(*changes["remove_users"])
            self.audit_change("membership_changed", group,
                              {key: [str(o) for o in objs] for key, objs in changes.items() if objs})
            reconcile.schedule_devices(before | reconcile.affected_by(group))
        return self.members(request, pk)


class GroupSettingViewSet(AuditedReconcilingViewSet):
    queryset = GroupSetting.objects.select_related("group")
    serializer_class = GroupSettingSerializer

    def group_of(self, obj):
        return obj.group

    def get_queryset(self):
        queryset = super().get_queryset()
        group = self.request.query_params.get("group")
        return queryset.filter(group_id=group) if group and group.isdigit() else queryset


class CatalogueView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=inline_serializer("CatalogueEntry", {
        "key": serializers.CharField(), "label": serializers.CharField(), "loc_uri": serializers.CharField(),
        "format": serializers.CharField(), "choices": serializers.ListField(child=serializers.DictField()),
        "help": serializers.CharField(), "removal": serializers.CharField()}, many=True))
    def get(self, request):
        return Response([{"key": e.key, "label": e.label, "loc_uri": e.loc_uri, "format": e.format,
                          "choices": [{"value": v, "meaning": m} for v, m in e.choices], "help": e.help,
                          "removal": e.removal} for e in catalogue.CATALOGUE.values()])
