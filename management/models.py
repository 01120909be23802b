"""The OMA-DM management of enrolled devices: sessions, the command queue, configuration groups and
the settings state the reconciler keeps per device."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from enrollment.models import Device
from invitations.models import InvalidTransition


class ManagementSession(models.Model):
    """One OMA-DM session of a device (OMA DM 1.2 Protocol; MS-MDM): the SessionID it chose, our MsgID counter and what
    we need to answer a retransmitted message. The commands sent in it point here."""

    class Auth(models.TextChoices):
        CERTIFICATE = "certificate", _("Client certificate")
        DIGEST = "digest", _("OMA-DM digest")

    # No index of its own: the (device, session_id, ended_at) index below serves every look-up by device, and
    # each index is one more entry written by the session's INSERT and its closing UPDATE.
    device = models.ForeignKey(Device, verbose_name=_("device"), related_name="sessions", on_delete=models.CASCADE,
                               db_index=False)
    session_id = models.CharField(_("SessionID"), max_length=64)
    auth = models.CharField(_("auth"), max_length=16, choices=Auth.choices)
    server_msg_id = models.PositiveIntegerField(_("our last MsgID"), default=0)
    client_msg_id = models.PositiveIntegerField(_("device's last MsgID"), default=0)
    messages = models.PositiveIntegerField(_("messages"), default=0)
    last_request_hash = models.CharField(_("last request hash"), max_length=64, blank=True, editable=False)
    last_reply = models.BinaryField(_("last reply"), blank=True, editable=False)
    events = models.JSONField(_("events"), default=list, blank=True,
                              help_text=_("Alerts the device sent (1224, 1226...)"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("management session")
        verbose_name_plural = _("management sessions")
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["device", "session_id", "ended_at"])]

    def __str__(self):
        return f"Session {self.session_id} of {self.device}"


class DeviceCommandQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status__in=[DeviceCommand.Status.QUEUED, DeviceCommand.Status.SENT])

    def history(self):
        return self.exclude(status__in=[DeviceCommand.Status.QUEUED, DeviceCommand.Status.SENT])


class DeviceCommand(models.Model):
    """One OMA-DM command for one device (OMA DM 1.2 RepPro; MS-MDM), queued by an administrator, a
    policy or the inventory, delivered at the device's next check-in in `pk` order (the sequence), and
    closed by the device's Status. Created through management.commands.queue()."""

    class Verb(models.TextChoices):
        GET = "Get"
        REPLACE = "Replace"
        ADD = "Add"
        DELETE = "Delete"
        EXEC = "Exec"

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        SUCCEEDED = "succeeded", _("Acknowledged")
        FAILED = "failed", _("Failed")
        TIMED_OUT = "timed_out", _("Timed out")
        CANCELLED = "cancelled", _("Cancelled")

    FINAL = {Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED}

    # Indexes, as few as the reads need: a command's row is rewritten (never a heap-only update: its
    # status and session are indexed) when it is sent and when it is answered, and each index is one
    # more entry written each time. The (device, status) and (session, msg_id, cmd_id) indexes serve
    # the look-ups by device and by session; source has a plain index (equality and the console's
    # filter), not the LIKE one of db_index (the console's search is a case-insensitive contains).
    device = models.ForeignKey(Device, verbose_name=_("device"), related_name="commands", on_delete=models.CASCADE,
                               db_index=False)
    verb = models.CharField(_("verb"), max_length=8, choices=Verb.choices)
    target = models.CharField(_("LocURI"), max_length=1024)
    format = models.CharField(_("format"), max_length=8, blank=True)
    type = models.CharField(_("type"), max_length=255, blank=True)
    data = models.TextField(_("data"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_code = models.PositiveIntegerField(_("device status code"), null=True, blank=True)
    result_data = models.TextField(_("result data"), blank=True)
    result_format = models.CharField(_("result format"), max_length=16, blank=True)
    note = models.CharField(_("note"), max_length=255, blank=True, help_text=_("Why the server closed it, if it did"))
    queued_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("queued by"), null=True, blank=True,
                                  related_name="+",
                                  on_delete=models.SET_NULL)
    source = models.CharField(_("source"), max_length=100, blank=True,
                              help_text=_('Who asked: "console:reboot", "policy:<id>", "inventory"...'))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0, help_text=_("Times sent"))
    session = models.ForeignKey(ManagementSession, verbose_name=_("session"), null=True, blank=True,
                                related_name="commands", db_index=False,
                                on_delete=models.SET_NULL, help_text=_("The session it was last sent in"))
    msg_id = models.PositiveIntegerField(_("our MsgID"), null=True, blank=True)
    cmd_id = models.PositiveIntegerField(_("our CmdID"), null=True, blank=True)

    objects = DeviceCommandQuerySet.as_manager()

    class Meta:
        verbose_name = _("device command")
        verbose_name_plural = _("device commands")
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["device", "status"]),
            models.Index(fields=["session", "msg_id", "cmd_id"]),
            models.Index(fields=["source"], name="management_command_source"),
        ]

    def __str__(self):
        return f"{self.verb} {self.target}"

    @property
    def is_pending(self):
        return self.status in (self.Status.QUEUED, self.Status.SENT)

    def cancel(self):
        """Only a command the device has not been sent yet can be withdrawn."""
        if self.status != self.Status.QUEUED:
            raise InvalidTransition(self.status, self.Status.CANCELLED)
        self.status, self.completed_at = self.Status.CANCELLED, timezone.now()
        self.save(update_fields=["status", "completed_at"])


# Formats a setting's value can have (OMA DM 1.2 RepPro, Meta/Format): node and null carry no value to configure.
SETTING_FORMATS = ("chr", "int", "bool", "b64", "xml", "float", "date", "time")


def value_problem(format, value):
    """Why `value` is not a valid `format` value for Windows, or "" when it is."""
    import base64
    import binascii
    import re

    if format == "int" and not re.fullmatch(r"-?[0-9]{1,10}", value):
        return gettext("An int setting takes a whole number, e.g. 0 or 1.")
    if format == "bool" and value not in ("true", "false"):
        return gettext("A bool setting takes true or false (lower case).")
    if format == "float" and not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return gettext("A float setting takes a number such as 1.5.")
    if format == "b64":
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            return gettext("A b64 setting takes base64 data.")
    return ""


class ConfigurationGroup(models.Model):
    """Devices that receive the same settings. A device is a member by hand, through
    its user, or by the group's rule; management/reconcile.py turns memberships and settings into
    commands. When two groups of a device set the same LocURI, the group with the lower priority
    number wins (then the older group): one predictable rule the console states next to the field."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    priority = models.PositiveIntegerField(_("priority"),
        default=100, help_text=_("When groups of a device set the same LocURI, the lower number wins (ties: the older group)"))
    devices = models.ManyToManyField(Device, blank=True, related_name="configuration_groups",
                                     verbose_name=_("devices added by hand"))
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, verbose_name=_("users"), blank=True,
                                   related_name="configuration_groups",
                                   help_text=_("All enrolled devices of these users are members"))
    pin_enrollments = models.ManyToManyField(
        "enrollment.PinEnrollment", verbose_name=_("pin enrollments"), blank=True, related_name="configuration_groups",
        help_text=_("Devices enrolled with these provisioning packages join the group (by hand) and get its settings"))
    # The membership rule: structured fields ANDed together, no expression language to evaluate.
    rule_enabled = models.BooleanField(_("membership by rule"), default=False,
                                       help_text=_("Enrolled devices matching every filled rule field are members "
                                                 "(no field filled: every enrolled device)"))
    rule_kind = models.CharField(_("kind"), max_length=16, choices=Device.Kind.choices, blank=True)
    rule_os_version_prefix = models.CharField(_("OS version starts with"), max_length=64, blank=True,
                                              help_text=_("e.g. 10.0.22631 for Windows 11 23H2"))
    rule_method = models.CharField(_("enrollment method"), max_length=16, choices=Device.Method.choices, blank=True)
    rule_enrollment_type = models.CharField(_("enrollment type"), max_length=8, choices=Device.EnrollmentType.choices,
                                            blank=True)
    rule_name_pattern = models.CharField(_("device name pattern"), max_length=100, blank=True,
                                         help_text=_("Shell-style, case-insensitive: LAB-* or KIOSK-?? (* any text, ? one character)"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("configuration group")
        verbose_name_plural = _("configuration groups")
        ordering = ["priority", "pk"]

    def __str__(self):
        return self.name

    # Every attribute of a device that matches_rule and groups_of read (with its memberships): when none
    # of them changed, nor any group (ConfigurationRevision), nor a membership, the groups are the same.
    RULE_INPUTS = ("status", "user_id", "kind", "method", "enrollment_type", "os_version", "name")

    def matches_rule(self, device):
        import fnmatch

        if not self.rule_enabled:
            return False
        checks = [
            not self.rule_kind or device.kind == self.rule_kind,
            not self.rule_method or device.method == self.rule_method,
            not self.rule_enrollment_type or device.enrollment_type == self.rule_enrollment_type,
            device.os_version.startswith(self.rule_os_version_prefix),
            not self.rule_name_pattern or fnmatch.fnmatchcase(device.name.upper(), self.rule_name_pattern.upper()),
        ]
        return all(checks)

    def member_reasons(self):
        """{device pk: "hand" | "user" | "rule"} for every enrolled member (the first reason found)."""
        enrolled = Device.objects.enrolled()
        reasons = {}
        for pk in enrolled.filter(configuration_groups=self).values_list("pk", flat=True):
            reasons.setdefault(pk, "hand")
        for pk in enrolled.filter(user__configuration_groups=self).values_list("pk", flat=True):
            reasons.setdefault(pk, "user")
        if self.rule_enabled:
            candidates = enrolled.filter(os_version__startswith=self.rule_os_version_prefix)
            for field in ("kind", "method", "enrollment_type"):
                if getattr(self, f"rule_{field}"):
                    candidates = candidates.filter(**{field: getattr(self, f"rule_{field}")})
            for device in candidates.only("pk", "name", "kind", "method", "enrollment_type", "os_version"):
                if self.matches_rule(device):
                    reasons.setdefault(device.pk, "rule")
        return reasons

    def members(self):
        return Device.objects.filter(pk__in=list(self.member_reasons()))


class GroupSetting(models.Model):
    """One setting of a group: a catalogue entry (management/catalogue.py) or a raw OMA-URI. The LocURI,
    format and removal plan of catalogue entries are copied from the catalogue when saved, so the
    reconciler treats both kinds alike."""

    class Verb(models.TextChoices):
        REPLACE = "Replace"
        ADD = "Add"

    class Removal(models.TextChoices):
        DELETE = "delete", _("Delete the node (policy → not configured)")
        RESET = "reset", _("Replace with the reset value")
        LEAVE = "leave", _("Leave the device as it is")

    group = models.ForeignKey(ConfigurationGroup, verbose_name=_("group"), related_name="settings",
                              on_delete=models.CASCADE)
    key = models.CharField(_("setting"), max_length=64, blank=True,
                           help_text=_("Catalogue entry; empty for a raw OMA-URI"))
    loc_uri = models.CharField(_("LocURI"), max_length=1024)
    format = models.CharField(_("format"), max_length=8, default="int")
    value = models.TextField(_("value"), blank=True)
    verb = models.CharField(_("verb"), max_length=8, choices=Verb.choices, default=Verb.REPLACE,
                            help_text=_("Command that sets the value the first time (Add for nodes that must be created)"))
    removal = models.CharField(_("removal"), max_length=8, choices=Removal.choices, default=Removal.DELETE,
                               help_text=_("What happens on the device when the setting no longer applies to it"))
    reset_value = models.CharField(_("reset value"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("group setting")
        verbose_name_plural = _("group settings")
        ordering = ["group", "pk"]
        constraints = [models.UniqueConstraint(fields=["group", "loc_uri"], name="one_value_per_locuri_per_group")]

    def __str__(self):
        return f"{self.label}: {self.value}"

    @property
    def label(self):
        from .catalogue import CATALOGUE

        entry = CATALOGUE.get(self.key)
        return str(entry.label) if entry else self.loc_uri

    def clean(self):
        """A catalogue entry takes its node, format and removal from the catalogue and must use one of
        its values; a raw setting must be a command Windows understands (commands.validate)."""
        from .catalogue import CATALOGUE
        from .commands import CommandError, validate

        if self.key:
            entry = CATALOGUE.get(self.key)
            if entry is None:
                raise ValidationError({"key": _("Unknown setting %(key)s.") % {"key": repr(self.key)}})
            if self.value not in dict(entry.choices):
                allowed = ", ".join(f"{value} ({meaning})" for value, meaning in entry.choices)
                raise ValidationError({"value": _("%(setting)s takes one of: %(allowed)s.") % {
                    "setting": entry.label, "allowed": allowed}})
            self.loc_uri, self.format, self.verb = entry.loc_uri, entry.format, self.Verb.REPLACE
            self.removal, self.reset_value = entry.removal, entry.reset_value
            return
        if self.format not in SETTING_FORMATS:
            raise ValidationError({"format": _("Use one of: %(formats)s.") % {"formats": ", ".join(SETTING_FORMATS)}})
        try:
            validate(self.verb, self.loc_uri, self.format, self.value)
        except CommandError as error:
            raise ValidationError({"loc_uri": str(error)}) from None
        problem = value_problem(self.format, self.value)
        if problem:
            raise ValidationError({"value": problem})
        if self.removal == self.Removal.RESET:
            problem = value_problem(self.format, self.reset_value)
            if problem:
                raise ValidationError({"reset_value": problem})
        elif self.reset_value:
            raise ValidationError({"reset_value": _("Only a setting removed by \"Replace with the reset value\" has one.")})


class DeviceSettingState(models.Model):
    """Where one LocURI of one device stands with respect to its groups: the value we want there, the
    command carrying it and, through that command's status, pending / applied / failed. Kept by
    management/reconcile.py; the state is read from the command, so it is never stale."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPLIED = "applied", _("Applied")
        FAILED = "failed", _("Failed")
        REMOVING = "removing", _("Being removed")
        REMOVED = "removed", _("Removed")

    device = models.ForeignKey(Device, verbose_name=_("device"), related_name="setting_states",
                               on_delete=models.CASCADE)
    loc_uri = models.CharField(_("LocURI"), max_length=1024)
    label = models.CharField(_("label"), max_length=255)
    format = models.CharField(_("format"), max_length=8)
    value = models.TextField(_("value"), blank=True)
    removal = models.CharField(_("removal"), max_length=8, choices=GroupSetting.Removal.choices)
    reset_value = models.CharField(_("reset value"), max_length=255, blank=True)
    group = models.ForeignKey(ConfigurationGroup, verbose_name=_("group"), null=True, blank=True,
                              related_name="device_states",
                              on_delete=models.SET_NULL, help_text=_("The group the value comes from"))
    command = models.ForeignKey("DeviceCommand", verbose_name=_("command"), null=True, blank=True, related_name="+",
                                on_delete=models.SET_NULL)
    removing = models.BooleanField(_("removing"), default=False,
                                   help_text=_("The setting left the device: the command removes it"))
    applied_once = models.BooleanField(_("applied once"), default=False,
                                       help_text=_("A value of this setting reached the device"))
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("device setting state")
        verbose_name_plural = _("device setting states")
        ordering = ["device", "loc_uri"]
        constraints = [models.UniqueConstraint(fields=["device", "loc_uri"], name="one_state_per_device_locuri")]

    def __str__(self):
        return f"{self.label} on {self.device}"

    @property
    def state(self):
        command = self.command
        if command is None or command.is_pending:
            return self.State.REMOVING if self.removing else self.State.PENDING
        if command.status == DeviceCommand.Status.SUCCEEDED or (self.removing and command.status_code == 404):
            # A Delete answered 404 found nothing to remove: the goal is reached all the same.
            return self.State.REMOVED if self.removing else self.State.APPLIED
        return self.State.FAILED

    @property
    def state_display(self):
        return self.State(self.state).label

    @property
    def failure(self):
        """Why a failed setting failed: the device's status code, or the server's note."""
        if self.state != self.State.FAILED:
            return ""
        if self.command.status_code is not None:
            return f"Status {self.command.status_code}"
        return self.command.note or self.command.get_status_display()


class ConfigurationRevision(models.Model):
    """One row whose number goes up with every change to a configuration group or its settings, in the
    same transaction (management/reconcile.py connects the signals): a device reconciled at revision N
    is known to be up to date with every group as long as the number is still N (and the device and
    its memberships are as they were, DeviceReconciliation). Without the row every device counts as
    out of date, so losing it costs work, never a missed setting."""

    number = models.BigIntegerField(_("number"), default=0)

    class Meta:
        verbose_name = _("configuration revision")
        verbose_name_plural = _("configuration revisions")

    def __str__(self):
        return str(self.number)


class DeviceReconciliation(models.Model):
    """What a device's last reconciliation was computed from: the ConfigurationRevision number then, the
    groups the device and its user were members of (management/checkin_sql.py, memberships_sql) and a
    fingerprint of the device's own inputs (ConfigurationGroup.RULE_INPUTS). An OMA-DM session's start
    reconciles the device again only when one of them differs, or when one of its settings needs the
    reconciler (a command that timed out or was cancelled, a removal to forget)."""

    device = models.OneToOneField(Device, verbose_name=_("device"), primary_key=True, related_name="+",
                                  on_delete=models.CASCADE)
    revision = models.BigIntegerField(_("revision"), null=True)
    memberships = models.TextField(_("memberships"), blank=True,
                                   help_text=_("The groups the device and its user were members of, by id"))
    fingerprint = models.CharField(_("fingerprint"), max_length=64)

    class Meta:
        verbose_name = _("device reconciliation")
        verbose_name_plural = _("device reconciliations")

    def __str__(self):
        return f"{self.device_id} at {self.revision}"
