"""The JSON API (/api/v1/) for users, invitations, the enrollment URL and the audit log, with CSV
exports of the users and of the audit log (invitations.exports: cells neutralised against
spreadsheet formulas, streamed, and audited).

Views stay thin: they parse, let ConsolePermissions check the role, and call the same domain code as
the console (invitations.sending).
"""
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from accounts.models import AuditEvent, Organisation, User
from mdmportal.console import client_ip

from . import exports, sending
from .models import InvalidTransition, Invitation, InvitationEmail, UrlRotation

# Statuses as the console shows them: a pending invitation past its expiry reads "expired".
EXPIRABLE_STATUSES = [Invitation.Status.QUEUED, Invitation.Status.SENT, Invitation.Status.OPENED,
                      Invitation.Status.FAILED]
DISPLAY_STATUSES = [*Invitation.Status.choices, ("expired", "expired")]
# The user fields an administrator sets; audited on create and update.
USER_FIELDS = ["email", "mdm_username", "display_name", "language", "device_limit", "is_active"]
MAX_INVITES_PER_REQUEST = 10000


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


# Users

class UserSerializer(serializers.ModelSerializer):
    enrollment_username = serializers.CharField(
        read_only=True, help_text="What the user types in Windows: the MDM username when set, else the email.")

    class Meta:
        model = User
        fields = ["id", "email", "mdm_username", "enrollment_username", "display_name", "language",
                  "device_limit", "is_active", "is_staff", "date_joined"]
        read_only_fields = ["is_staff", "date_joined"]
        # Uniqueness is checked case-insensitively below; the model's own check is case-sensitive.
        extra_kwargs = {"email": {"validators": []}, "mdm_username": {"validators": []}}

    def validate_email(self, value):
        email = value.strip().lower()
        others = self._other_users()
        if others.filter(email__iexact=email).exists():
            raise serializers.ValidationError("A user with this email already exists.")
        if others.filter(mdm_username__iexact=email).exists():
            raise serializers.ValidationError("This email is another user's MDM username.")
        return email

    def validate_mdm_username(self, value):
        username = (value or "").strip() or None
        if username is None:
            return None
        # Sign-in accepts either identity, so a name must not point at two different users.
        others = self._other_users()
        if others.filter(mdm_username__iexact=username).exists():
            raise serializers.ValidationError("This MDM username is already taken.")
        if others.filter(email__iexact=username).exists():
            raise serializers.ValidationError("This MDM username is another user's email.")
        return username

    def update(self, instance, validated_data):
        request = self.context["request"]
        before = {field: getattr(instance, field) for field in USER_FIELDS}
        with _unique_violation_as_400(), transaction.atomic():
            user = super().update(instance, validated_data)
            changes = {field: [before[field], getattr(user, field)] for field in USER_FIELDS
                       if before[field] != getattr(user, field)}
            if changes:
                AuditEvent.record(request.user, "user.updated", user, ip=client_ip(request),
                                  detail={"changes": changes, "via": "api"})
        return user

    def _other_users(self):
        users = User.objects.all()
        return users.exclude(pk=self.instance.pk) if self.instance is not None else users


class InvitationEmailSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvitationEmail
        fields = ["id", "reason", "status", "attempts", "error", "queued_at", "sent_at"]


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(source="display_status", choices=DISPLAY_STATUSES, read_only=True)
    user_email = serializers.EmailField(source="user.email", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, allow_null=True)
    emails = InvitationEmailSerializer(many=True, read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "user", "user_email", "status", "failure_reason", "created_by", "created_at",
                  "expires_at", "sent_at", "opened_at", "accepted_at", "completed_at", "revoked_at", "emails"]
        read_only_fields = fields


class UserCreateSerializer(UserSerializer):
    send_invitation = serializers.BooleanField(
        write_only=True, default=False, help_text="Also send the user an invitation email.")
    invitation = InvitationSerializer(
        read_only=True, allow_null=True, help_text="The invitation sent, when send_invitation was true.")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "send_invitation", "invitation"]

    def create(self, validated_data):
        request = self.context["request"]
        ip = client_ip(request)
        send = validated_data.pop("send_invitation")
        # One transaction: a failed invitation leaves no user behind, and vice versa.
        with _unique_violation_as_400(), transaction.atomic():
            user = User.objects.create_user(**validated_data)
            AuditEvent.record(request.user, "user.created", user, ip=ip,
                              detail={**{f: getattr(user, f) for f in USER_FIELDS}, "via": "api"})
            invited = sending.invite([user], actor=request.user, ip=ip) if send else []
        user.invitation = _with_emails(invited)[0] if invited else None
        return user


class UserFilterSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, help_text="Exact email, case-insensitive.")


@extend_schema_view(list=extend_schema(parameters=[UserFilterSerializer]))
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Users of the portal. Creating one can also invite them."""

    queryset = User.objects.all()
    serializer_class = UserSerializer
    filter_backends = [SearchFilter]
    search_fields = ["email", "display_name", "mdm_username"]

    def get_serializer_class(self):
        return UserCreateSerializer if self.action == "create" else UserSerializer

    def get_queryset(self):
        users = super().get_queryset()
        if self.action not in ("list", "export"):
            return users
        filters = UserFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "email" in filters.validated_data:
            users = users.filter(email__iexact=filters.validated_data["email"].strip())
        return users

    def perform_update(self, serializer):
        # Administrators' accounts are only changed by those who may grant roles: otherwise an
        # enrollment administrator could take over a full administrator's account via its email.
        if serializer.instance.is_staff and not self.request.user.has_perm("auth.change_group"):
            raise exceptions.PermissionDenied("Only an administrator who manages roles may change "
                                              "another administrator's account.")
        serializer.save()

    @extend_schema(parameters=[UserFilterSerializer], responses={(200, "text/csv"): bytes},
                   description="The users (filtered and searched like the list, all pages) as CSV with the "
                               "columns of the console's user import, which reads the file back unchanged.")
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request):
        return exports.export_users(self.filter_queryset(self.get_queryset()), actor=request.user,
                                    ip=client_ip(request), via="api",
                                    detail={"filter": exports.filter_of(request.query_params)})


# Invitations

class InviteSerializer(serializers.Serializer):
    users = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=MAX_INVITES_PER_REQUEST,
        help_text="Ids of the users to invite; a user with a pending invitation gets it resent.")

    def validate_users(self, ids):
        ids = list(dict.fromkeys(ids))
        users = {user.pk: user for user in User.objects.filter(pk__in=ids)}
        unknown = [pk for pk in ids if pk not in users]
        if unknown:
            raise serializers.ValidationError(f"Unknown user ids: {', '.join(map(str, unknown))}.")
        inactive = [user.email for user in users.values() if not user.is_active]
        if inactive:
            raise serializers.ValidationError(f"Inactive users cannot be invited: {', '.join(inactive)}.")
        return [users[pk] for pk in ids]


class InvitationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DISPLAY_STATUSES, required=False)
    user = serializers.IntegerField(min_value=1, required=False, help_text="User id.")


def filter_by_display_status(invitations, wanted):
    """Invitations whose display_status is `wanted`."""
    now = timezone.now()
    if wanted == "expired":
        return invitations.filter(status__in=EXPIRABLE_STATUSES, expires_at__lte=now)
    if wanted in EXPIRABLE_STATUSES:
        return invitations.filter(status=wanted, expires_at__gt=now)
    return invitations.filter(status=wanted)


@extend_schema_view(list=extend_schema(parameters=[InvitationFilterSerializer]))
class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Invitations and their emails; send, resend and revoke them."""

    queryset = Invitation.objects.select_related("user", "created_by").prefetch_related("emails")
    serializer_class = InvitationSerializer
    action_permissions = {
        "create": ["invitations.add_invitation", "accounts.send_invitation"],
        "resend": ["invitations.change_invitation", "accounts.send_invitation"],
        "revoke": ["invitations.change_invitation"],
    }

    def get_queryset(self):
        invitations = super().get_queryset()
        if self.action != "list":
            return invitations
        filters = InvitationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "status" in filters.validated_data:
            invitations = filter_by_display_status(invitations, filters.validated_data["status"])
        if "user" in filters.validated_data:
            invitations = invitations.filter(user_id=filters.validated_data["user"])
        return invitations

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer(many=True)},
                   description="Invite users (or resend their pending invitation).")
    def create(self, request):
        form = InviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        invited = sending.invite(form.validated_data["users"], actor=request.user, ip=client_ip(request))
        data = InvitationSerializer(_with_emails(invited), many=True).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationSerializer, 409: DetailSerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        invitation = self.get_object()
        try:
            sending.resend(invitation, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            raise Conflict(f"This invitation is {invitation.display_status} and cannot be resent.")
        return Response(InvitationSerializer(self.get_object()).data)

    @extend_schema(request=None, responses={200: InvitationSerializer, 409: DetailSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        invitation = self.get_object()
        try:
            sending.revoke(invitation, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            raise Conflict(f"This invitation is {invitation.display_status} and cannot be revoked.")
        return Response(InvitationSerializer(self.get_object()).data)


# Enrollment URL

class EnrollmentUrlSerializer(serializers.ModelSerializer):
    url = serializers.URLField(source="enrollment_url", read_only=True,
                               help_text="The server address a user pastes into Windows.")
    version = serializers.IntegerField(source="enrollment_url_version", read_only=True)

    class Meta:
        model = Organisation
        fields = ["url", "version"]


class UrlRotationSerializer(serializers.ModelSerializer):
    """A rotation read through UrlRotation.with_email_counts (its emails by status)."""

    started_by = serializers.EmailField(source="started_by.email", read_only=True, allow_null=True)
    percent = serializers.IntegerField(source="progress_percent", read_only=True,
                                       help_text="Share of the pending invitations whose email is queued.")
    sent = serializers.IntegerField(read_only=True, help_text="Emails with the new URL sent.")
    failed = serializers.IntegerField(read_only=True, help_text="Emails with the new URL that failed.")
    waiting = serializers.IntegerField(read_only=True, help_text="Emails with the new URL not sent yet.")
    state = serializers.ChoiceField(["counting", "queuing", "sending", "finished"], read_only=True,
                                    help_text="finished once every email is sent or has failed.")

    class Meta:
        model = UrlRotation
        fields = ["id", "version", "started_by", "started_at", "total", "done", "finished_at", "percent", "sent",
                  "failed", "waiting", "state"]
        read_only_fields = fields


class EnrollmentUrlViewSet(viewsets.GenericViewSet):
    """The organisation's current enrollment URL, and its regeneration."""

    queryset = Organisation.objects.all()
    serializer_class = EnrollmentUrlSerializer
    action_permissions = {"regenerate": ["accounts.regenerate_enrollment_url"]}

    @extend_schema(responses=EnrollmentUrlSerializer)
    def current(self, request):
        return Response(EnrollmentUrlSerializer(Organisation.get()).data)

    @extend_schema(
        request=None, responses={202: UrlRotationSerializer},
        description="Rotate the enrollment URL: older URLs stop working and every user with a pending "
                    "invitation is sent the new one in the background. Follow the returned rotation.")
    def regenerate(self, request):
        rotation = sending.regenerate_enrollment_url(Organisation.get(), actor=request.user, ip=client_ip(request))
        rotation.refresh_from_db()
        [rotation] = UrlRotation.with_email_counts([rotation])
        return Response(UrlRotationSerializer(rotation).data, status=status.HTTP_202_ACCEPTED)


class UrlRotationViewSet(viewsets.ReadOnlyModelViewSet):
    """Progress of enrollment-URL regenerations re-issuing pending invitations."""

    queryset = UrlRotation.objects.select_related("started_by")
    serializer_class = UrlRotationSerializer

    def get_object(self):
        return UrlRotation.with_email_counts([super().get_object()])[0]

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return None if page is None else UrlRotation.with_email_counts(page)


# Audit log

class AuditEventSerializer(serializers.ModelSerializer):
    time = serializers.DateTimeField(source="created_at", read_only=True)
    actor = serializers.CharField(source="actor_label", read_only=True)
    object_type = serializers.CharField(source="target_type", read_only=True)
    object_id = serializers.CharField(source="target_id", read_only=True)
    object = serializers.CharField(source="target_label", read_only=True)
    address = serializers.IPAddressField(source="ip", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "time", "actor", "action", "object_type", "object_id", "object", "address", "count",
                  "last_at", "detail"]
        read_only_fields = fields


class AuditEventFilterSerializer(serializers.Serializer):
    action = serializers.CharField(required=False, help_text="Exact action, e.g. user.added.")
    since = serializers.DateTimeField(required=False, help_text="Events at or after this time (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Events before this time (ISO 8601).")
    search = serializers.CharField(required=False, help_text="Part of the actor, the object or its id.")


@extend_schema_view(list=extend_schema(parameters=[AuditEventFilterSerializer]))
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log, newest first: read-only, as in the console. Whoever may read it may export it."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        events = super().get_queryset()
        if self.action not in ("list", "export"):
            return events
        filters = AuditEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        if "action" in wanted:
            events = events.filter(action=wanted["action"])
        if "since" in wanted:
            events = events.filter(created_at__gte=wanted["since"])
        if "until" in wanted:
            events = events.filter(created_at__lt=wanted["until"])
        if wanted.get("search"):
            term = wanted["search"]
            events = events.filter(Q(actor_label__icontains=term) | Q(target_label__icontains=term)
                                   | Q(target_id__icontains=term))
        return events

    @extend_schema(parameters=[AuditEventFilterSerializer], responses={(200, "text/csv"): bytes},
                   description="The events (filtered like the list, all pages) as CSV, streamed; the export "
                               "is itself audited (audit.exported).")
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request):
        return exports.export_audit(self.get_queryset(), actor=request.user, ip=client_ip(request), via="api",
                                    detail={"filter": exports.filter_of(request.query_params)})


# Helpers

def _with_emails(invitation_ids):
    """The invitations of these ids (as sending.invite returns them) with their emails, same order."""
    fresh = Invitation.objects.select_related("user", "created_by").prefetch_related("emails").in_bulk(invitation_ids)
    return [fresh[pk] for pk in invitation_ids]


@contextmanager
def _unique_violation_as_400():
    """A concurrent request can take an email or MDM username between validation and save: answer
    that with a 400 like the validators', not a 500."""
    try:
        yield
    except IntegrityError as exc:
        raise serializers.ValidationError(
            {"non_field_errors": ["Another user with this email or MDM username was just saved."]}
        ) from exc
