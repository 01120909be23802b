"""JSON API of the enrollment app, with the console's permissions: enrolled devices (read-only,
/api/v1/devices/) and provisioning-package PIN enrollments (/api/v1/pin-enrollments/)."""
import copy

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import AuditEvent
from invitations.models import InvalidTransition
from mdmportal.console import client_ip

from . import ppkg, wcd
from .console_forms import check_upn_is_free
from .models import Device, PinEnrollment


# Read-only fields of apps built on this one (management: a wipe or retire pending), which this app must not
# import: name -> (queryset annotation, serializer field), added to the device's JSON in registration order.
_device_fields = {}


def register_device_field(name, annotate, field):
    """Add `name` to the devices' JSON: `annotate(queryset)` adds it to the devices read (in their SELECT,
    whatever their number), `field` (a read-only serializer field) shows it."""
    _device_fields[name] = (annotate, field)


class DeviceSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", read_only=True)

    def get_fields(self):
        fields = super().get_fields()
        for name, (_, field) in _device_fields.items():
            fields[name] = copy.deepcopy(field)
        return fields

    class Meta:
        model = Device
        fields = ["id", "device_id", "hw_dev_id", "name", "kind", "status", "user", "upn", "method", "pin_enrollment",
                  "enrollment_type", "os_version", "os_edition", "certificate_serial", "certificate_thumbprint",
                  "certificate_not_after", "revoked_at", "replaced_by", "context_items", "enrolled_at",
                  "last_seen_at", "unenrolled_at", "login_status", "manufacturer", "model", "serial_number",
                  "os_platform", "architecture", "total_ram_mb", "hardware_data", "inventory_at"]
        read_only_fields = fields


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Device.objects.select_related("user").order_by("-enrolled_at", "-pk")
    serializer_class = DeviceSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        for annotate, _ in _device_fields.values():
            queryset = annotate(queryset)
        for name in ("kind", "status", "method", "enrollment_type"):
            value = self.request.query_params.get(name)
            if value:
                queryset = queryset.filter(**{name: value})
        user = self.request.query_params.get("user")
        if user:
            queryset = queryset.filter(user__email__iexact=user)
        pin_enrollment = self.request.query_params.get("pin_enrollment")
        if pin_enrollment:
            if not pin_enrollment.isdigit():
                raise exceptions.ValidationError({"pin_enrollment": "Give the id of a PIN enrollment."})
            queryset = queryset.filter(pin_enrollment_id=int(pin_enrollment))
        return queryset


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PinEnrollmentSerializer(serializers.ModelSerializer):
    upn = serializers.EmailField(required=False, allow_blank=True, max_length=254,
                                 help_text="The service identity the package signs in with; "
                                           "enroll-<name>@<organisation domain> when omitted.")
    owner = serializers.SlugRelatedField(slug_field="email", queryset=get_user_model().objects.filter(is_active=True),
                                         help_text="Email of the user the enrolled devices belong to.")
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    status = serializers.CharField(read_only=True, help_text="active, used up, locked, expired or revoked")
    devices_used = serializers.IntegerField(source="used_count", read_only=True)
    discovery_url = serializers.SerializerMethodField()

    class Meta:
        model = PinEnrollment
        fields = ["id", "name", "upn", "owner", "expires_at", "max_devices", "devices_used",
                  "status", "discovery_url", "pin_generation", "pin_changed_at", "failed_attempts", "locked_until",
                  "revoked_at", "created_by", "created_at", "updated_at"]
        read_only_fields = ["pin_generation", "pin_changed_at", "failed_attempts", "locked_until", "revoked_at",
                            "created_at", "updated_at"]

    def get_discovery_url(self, pin_enrollment) -> str:
        return ppkg.discovery_url()

    def get_fields(self):
        # The options of apps above this one (ppkg.register_option), after the owner.
        fields = super().get_fields()
        names = list(fields)
        after = names.index("owner") + 1
        extra = {option.name: option.api_field() for option in ppkg.options()}
        return {**{n: fields[n] for n in names[:after]}, **extra, **{n: fields[n] for n in names[after:]}}

    def validate_expires_at(self, value):
        if value <= timezone.now():
            raise serializers.ValidationError("Choose a moment in the future.")
        return value

    def validate(self, data):
        upn = (data.get("upn") or ppkg.default_upn(data["name"])).strip().lower()
        try:
            check_upn_is_free(upn)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"upn": error.messages}) from None
        return {**data, "upn": upn}


class NewPinSerializer(PinEnrollmentSerializer):
    pin = serializers.SerializerMethodField(help_text="The PIN, in clear this once: it is stored only as a hash.")

    class Meta(PinEnrollmentSerializer.Meta):
        fields = [*PinEnrollmentSerializer.Meta.fields, "pin"]

    def get_pin(self, pin_enrollment) -> str:
        return self.context["pin"]


class ProjectRequestSerializer(serializers.Serializer):
    pin = serializers.CharField(help_text="The current PIN, as shown at creation or regeneration.")


class PinEnrollmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Provisioning-package PIN enrollments: create one (its PIN is in that answer only), follow its
    devices, regenerate its PIN, revoke it, and download its Windows Configuration Designer project."""

    queryset = (PinEnrollment.objects.with_device_count().select_related("owner", "created_by")
                .order_by("-created_at", "-pk"))
    serializer_class = PinEnrollmentSerializer

    def get_queryset(self):
        prefetch = [name for option in ppkg.options() for name in option.prefetch]
        return super().get_queryset().prefetch_related(*prefetch)

    action_permissions = {
        "regenerate": ["enrollment.change_pinenrollment"],
        "revoke": ["enrollment.change_pinenrollment"],
        "unlock": ["enrollment.change_pinenrollment"],
        "wcd_project": ["enrollment.change_pinenrollment"],
    }

    @extend_schema(responses={201: NewPinSerializer})
    def create(self, request):
        form = PinEnrollmentSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                pin_enrollment, pin = ppkg.create(**form.validated_data, actor=request.user, ip=client_ip(request))
        except IntegrityError:
            raise Conflict("Another PIN enrollment with this service identity was just saved.") from None
        return Response(self._with_pin(pin_enrollment, pin), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: NewPinSerializer, 409: OpenApiResponse(description="revoked")})
    @action(detail=True, methods=["post"])
    def regenerate(self, request, pk=None):
        """A new PIN (in this answer only); packages built with the old one stop enrolling."""
        pin_enrollment = self.get_object()
        try:
            pin = ppkg.regenerate(pin_enrollment, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            raise Conflict("A revoked PIN enrollment gets no new PIN.") from None
        return Response(self._with_pin(pin_enrollment, pin))

    @extend_schema(request=None, responses={200: PinEnrollmentSerializer, 409: OpenApiResponse(description="revoked")})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        pin_enrollment = self.get_object()
        try:
            ppkg.revoke(pin_enrollment, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            raise Conflict("This PIN enrollment is already revoked.") from None
        return Response(PinEnrollmentSerializer(self.get_object()).data)

    @extend_schema(request=None,
                   responses={200: PinEnrollmentSerializer, 409: OpenApiResponse(description="not locked")})
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        pin_enrollment = self.get_object()
        try:
            ppkg.unlock(pin_enrollment, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            raise Conflict("This PIN enrollment is not locked.") from None
        return Response(PinEnrollmentSerializer(self.get_object()).data)

    @extend_schema(request=ProjectRequestSerializer,
                   responses={(200, "application/zip"): OpenApiResponse(description="the project zip"),
                              400: OpenApiResponse(description="wrong PIN"),
                              409: OpenApiResponse(description="revoked or expired")})
    @action(detail=True, methods=["post"], url_path="wcd-project")
    def wcd_project(self, request, pk=None):
        """The Windows Configuration Designer project (zip) for the PIN given, which must be current."""
        pin_enrollment = self.get_object()
        form = ProjectRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        if not pin_enrollment.is_usable:
            raise Conflict("This PIN enrollment is revoked or expired: a package would not enroll.")
        pin = form.validated_data["pin"].strip()
        if not ppkg.pin_matches(pin_enrollment, pin):
            raise exceptions.ValidationError({"pin": ["This is not the current PIN."]})
        filename, data = wcd.project_zip(pin_enrollment, pin)
        AuditEvent.record(request.user, "pin_enrollment.project_downloaded", pin_enrollment, ip=client_ip(request),
                          detail={"via": "api"})
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def _with_pin(self, pin_enrollment, pin):
        fresh = self.get_queryset().get(pk=pin_enrollment.pk)
        return NewPinSerializer(fresh, context={"request": self.request, "pin": pin}).data

