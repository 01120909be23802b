"""Windows Autopilot: deployment profiles, the hardware records imported from Windows' CSV, the imports
themselves with their row-by-row report, and the link made when an imported device enrolls.

Brief §9. What the profile asks for beyond the offline file (configuration groups, TenantLockdown,
essential apps, the Enrollment Status Page) is delivered over OMA-DM, which is built separately: the
link records the profile to apply, and `applied_at` stays empty until that delivery exists.
"""
import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from invitations.models import InvalidTransition

from . import naming

# Locale names as Windows' OOBE takes them: language[-Script]-REGION ("en-US", "sr-Latn-RS").
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?-[A-Z]{2}$")
PRODUCT_CODE_RE = re.compile(r"^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$")
SHA256_RE = re.compile(r"^[0-9A-Fa-f]{64}$")
# Microsoft Store ids are 12 upper-case letters and digits ("9WZDNCRFJ3PZ"); MSIX apps go by their
# package family name ("Microsoft.CompanyPortal_8wekyb3d8bbwe").
STORE_ID_RE = re.compile(r"^([0-9A-Z]{12}|[A-Za-z0-9.\-]{3,50}_[a-z0-9]{13})$")


class Profile(models.Model):
    """An Autopilot deployment profile, with the settings an Intune administrator knows."""

    class DeploymentMode(models.TextChoices):
        USER_DRIVEN = "user_driven", "User-driven"
        SELF_DEPLOYING = "self_deploying", "Self-deploying"

    class JoinType(models.TextChoices):
        ENTRA = "entra", "Microsoft Entra joined"
        HYBRID = "hybrid", "Microsoft Entra hybrid joined"

    class DeviceType(models.TextChoices):
        WINDOWS_PC = "windows_pc", "Windows PC"
        HOLOLENS = "hololens2", "HoloLens 2"

    class UserAccountType(models.TextChoices):
        STANDARD = "standard", "Standard"
        ADMINISTRATOR = "administrator", "Administrator"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    device_type = models.CharField(max_length=16, choices=DeviceType.choices, default=DeviceType.WINDOWS_PC)
    deployment_mode = models.CharField(max_length=16, choices=DeploymentMode.choices,
                                       default=DeploymentMode.USER_DRIVEN)
    allow_pre_provisioning = models.BooleanField(
        "allow pre-provisioned deployment", default=False,
        help_text="Lets a technician or reseller provision the device before the user gets it (formerly White Glove).")
    join_type = models.CharField("join to Microsoft Entra ID as", max_length=8, choices=JoinType.choices,
                                 default=JoinType.ENTRA)
    user_account_type = models.CharField(max_length=16, choices=UserAccountType.choices,
                                         default=UserAccountType.STANDARD)
    hide_eula = models.BooleanField("hide the Microsoft Software License Terms", default=True)
    hide_privacy_settings = models.BooleanField(default=True)
    hide_change_account_options = models.BooleanField(default=True)
    language = models.CharField(
        "language (region)", max_length=16, blank=True,
        help_text="A locale such as en-US or fr-FR; empty for the operating system default.")
    configure_keyboard = models.BooleanField(
        "automatically configure keyboard", default=False,
        help_text="Skips the keyboard page; needs a language.")
    device_name_template = models.CharField(
        "device name template", max_length=64, blank=True,
        help_text="Up to 15 characters once expanded: letters, digits and hyphens, not only digits. "
                  "%SERIAL% adds the serial number (Windows cuts it to fit), %RAND:x% adds x random digits.")
    convert_all_targeted_devices = models.BooleanField(
        "convert all targeted devices to Autopilot", default=False,
        help_text="Enrolled devices targeted by this profile are registered for Autopilot too.")
    autopilot_update_during_oobe = models.BooleanField(
        "install Autopilot updates during setup", default=False,
        help_text="When off, the offline file tells Windows to skip the Autopilot update check in setup.")
    tenant_lockdown = models.BooleanField(
        "require network connection in setup (TenantLockdown)", default=False,
        help_text="After a reset, the device cannot get past setup without the network, so it always "
                  "comes back to this organisation.")
    configuration_groups = models.TextField(
        blank=True,
        help_text="Names of the configuration groups devices of this profile join, one per line. Stored as "
                  "text until configuration groups exist; then they become a link.")
    is_default = models.BooleanField(
        "default profile", default=False,
        help_text="Given to Autopilot devices with no explicit profile and no matching group tag. At most one.")
    ztd_correlation_id = models.UUIDField("ZtdCorrelationId", default=uuid.uuid4, unique=True, editable=False,
                                          help_text="Written in the offline file; Windows sends it back at enrollment.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="one_default_autopilot_profile",
                                    violation_error_message="Another profile is already the default profile: "
                                                            "untick it there first."),
        ]

    def __str__(self):
        return self.name

    @property
    def configuration_group_names(self):
        return [line.strip() for line in self.configuration_groups.splitlines() if line.strip()]

    @property
    def is_self_deploying(self):
        return self.deployment_mode == self.DeploymentMode.SELF_DEPLOYING

    def clean(self):
        errors = {}
        if self.device_type == self.DeviceType.HOLOLENS:
            if self.deployment_mode != self.DeploymentMode.SELF_DEPLOYING:
                errors["deployment_mode"] = "HoloLens 2 profiles must be self-deploying: HoloLens supports no other mode."
            if self.join_type != self.JoinType.ENTRA:
                errors["join_type"] = "HoloLens 2 can only join Microsoft Entra ID, not a hybrid domain."
            if self.allow_pre_provisioning:
                errors["allow_pre_provisioning"] = "HoloLens 2 does not support pre-provisioned deployment."
        elif self.is_self_deploying and self.join_type == self.JoinType.HYBRID:
            errors["join_type"] = "Self-deploying mode supports Microsoft Entra join only, not hybrid join."
        if self.language and not LOCALE_RE.match(self.language):
            errors["language"] = "Give a locale such as en-US or fr-FR, or leave it empty for the OS default."
        if self.configure_keyboard and not self.language:
            errors["configure_keyboard"] = "Windows can only pick the keyboard for you when the language is set."
        if self.device_name_template:
            if self.join_type == self.JoinType.HYBRID:
                errors["device_name_template"] = ("Hybrid-joined devices are named by the domain join configuration; "
                                                  "leave the template empty.")
            else:
                problem = naming.template_error(self.device_name_template)
                if problem:
                    errors["device_name_template"] = problem
        if errors:
            raise ValidationError(errors)


class GroupTagRule(models.Model):
    """Devices imported with this group tag get this profile (unless one is assigned explicitly)."""

    profile = models.ForeignKey(Profile, related_name="group_tags", on_delete=models.CASCADE)
    tag = models.CharField(max_length=128)

    class Meta:
        ordering = ["tag"]
        constraints = [
            models.UniqueConstraint(Lower("tag"), name="unique_autopilot_group_tag",
                                    violation_error_message="This group tag already leads to another profile."),
        ]

    def __str__(self):
        return self.tag

    def clean(self):
        self.tag = self.tag.strip()
        if not self.tag:
            raise ValidationError({"tag": "A group tag cannot be empty."})


class EssentialApp(models.Model):
    """An app a profile installs during provisioning. Stored and listed here; delivering it to devices
    (EnterpriseDesktopAppManagement, Store) comes with the management channel."""

    class Kind(models.TextChoices):
        MSI = "msi", "MSI (line-of-business)"
        STORE = "store", "Microsoft Store / MSIX"

    profile = models.ForeignKey(Profile, related_name="essential_apps", on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MSI)
    msi_url = models.URLField("MSI URL", max_length=1000, blank=True)
    product_code = models.CharField(max_length=38, blank=True, help_text="{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}")
    sha256 = models.CharField("SHA-256 of the MSI", max_length=64, blank=True)
    store_id = models.CharField("Store id or package family name", max_length=80, blank=True)

    class Meta:
        ordering = ["profile", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.kind == self.Kind.MSI:
            if not self.msi_url:
                errors["msi_url"] = "An MSI app needs the URL devices download it from."
            elif not self.msi_url.lower().startswith("https://"):
                errors["msi_url"] = "Devices only download MSI files over https://."
            if not PRODUCT_CODE_RE.match(self.product_code):
                errors["product_code"] = "Give the MSI product code as a GUID in braces, e.g. {9BE6A8D4-...}."
            if not SHA256_RE.match(self.sha256):
                errors["sha256"] = "Give the file's SHA-256 as 64 hexadecimal characters."
            else:
                self.sha256 = self.sha256.upper()
        elif not STORE_ID_RE.match(self.store_id):
            errors["store_id"] = ("Give a Store id (12 letters and digits, e.g. 9WZDNCRFJ3PZ) or an MSIX package "
                                  "family name (Name_publisherid).")
        if errors:
            raise ValidationError(errors)


class AutopilotDeviceQuerySet(models.QuerySet):
    def with_state(self):
        """Annotates `is_enrolled`: a live enrollment of this hardware is linked to the record."""
        live = AutopilotEnrollment.objects.filter(record=models.OuterRef("pk"), device__status="enrolled")
        return self.annotate(is_enrolled=models.Exists(live))

    def pending(self):
        return self.with_state().filter(is_enrolled=False)

    def enrolled(self):
        return self.with_state().filter(is_enrolled=True)


class AutopilotDevice(models.Model):
    """A device registered for Autopilot, from a row of Windows' hardware-hash CSV. It is *pending*
    until an enrollment of that hardware is linked to it."""

    serial_number = models.CharField(max_length=64)
    serial_key = models.CharField(max_length=64, unique=True, editable=False,
                                  help_text="The serial number upper-cased: serials compare without case")
    product_id = models.CharField("Windows Product ID", max_length=64, blank=True)
    hardware_hash = models.TextField(blank=True)
    hardware_hash_digest = models.CharField(max_length=64, blank=True, db_index=True, editable=False,
                                            help_text="SHA-256 of the decoded hardware hash, to match it quickly")
    group_tag = models.CharField(max_length=128, blank=True, db_index=True)
    assigned_user = models.EmailField(blank=True, help_text="The user the device is for (its UPN)")
    ztd_id = models.CharField("ZTD id", max_length=64, blank=True, db_index=True,
                              help_text="The device's Zero Touch id in Microsoft's Autopilot service, when known")
    profile = models.ForeignKey(Profile, null=True, blank=True, related_name="assigned_devices",
                                on_delete=models.SET_NULL, help_text="Explicitly assigned profile")
    profile_assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                            on_delete=models.SET_NULL)
    profile_assigned_at = models.DateTimeField(null=True, blank=True)
    source_import = models.ForeignKey("DeviceImport", null=True, blank=True, related_name="+",
                                      on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AutopilotDeviceQuerySet.as_manager()

    class Meta:
        verbose_name = "Autopilot device"
        ordering = ["serial_key"]

    def __str__(self):
        return self.serial_number

    def assign_profile(self, profile, *, by):
        """Explicit selection (None clears it, back to group tag or default)."""
        self.profile = profile
        self.profile_assigned_by = by if profile is not None else None
        self.profile_assigned_at = timezone.now() if profile is not None else None
        self.updated_at = timezone.now()
        self.save(update_fields=["profile", "profile_assigned_by", "profile_assigned_at", "updated_at"])


class DeviceImport(models.Model):
    """One upload of Windows' hardware-hash CSV. The file is kept in chunks until the task has read
    it; the per-row report (ImportRow) stays."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file_name = models.CharField(max_length=255)
    file_size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="Why the file as a whole could not be read")
    total_rows = models.PositiveIntegerField(default=0, help_text="Data lines counted at upload (for the progress bar)")
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField("created", default=0)
    updated_count = models.PositiveIntegerField("updated", default=0)
    unchanged_count = models.PositiveIntegerField("unchanged", default=0)
    failed_count = models.PositiveIntegerField("refused", default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                    on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "device import"
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.file_name} ({self.created_at:%Y-%m-%d %H:%M})" if self.created_at else self.file_name

    @property
    def is_finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self):
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, self.processed_rows * 100 // self.total_rows)

    def start(self):
        """Queued → running. A running import is resumed (a worker died and the task came back)."""
        if self.status not in (self.Status.QUEUED, self.Status.RUNNING):
            raise InvalidTransition(self.status, self.Status.RUNNING)
        self.status = self.Status.RUNNING
        self.started_at = self.started_at or timezone.now()
        self.save(update_fields=["status", "started_at"])

    def finish(self, *, error=""):
        if self.status != self.Status.RUNNING:
            raise InvalidTransition(self.status, self.Status.DONE)
        self.status = self.Status.FAILED if error else self.Status.DONE
        self.error, self.finished_at = error, timezone.now()
        self.save(update_fields=["status", "error", "finished_at"])
        self.chunks.all().delete()


class DeviceImportChunk(models.Model):
    """A piece of the uploaded file, so that a worker on another host can stream it back."""

    device_import = models.ForeignKey(DeviceImport, related_name="chunks", on_delete=models.CASCADE)
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["device_import", "index"]
        constraints = [models.UniqueConstraint(fields=["device_import", "index"], name="unique_import_chunk")]


class ImportRow(models.Model):
    """The result of one data line of an import."""

    class Result(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        UNCHANGED = "unchanged", "Unchanged"
        FAILED = "failed", "Refused"

    device_import = models.ForeignKey(DeviceImport, related_name="rows", on_delete=models.CASCADE)
    line = models.PositiveIntegerField()
    serial_number = models.CharField(max_length=255, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    message = models.TextField(blank=True)
    device = models.ForeignKey(AutopilotDevice, null=True, blank=True, related_name="+", on_delete=models.SET_NULL)

    class Meta:
        ordering = ["device_import", "line"]
        indexes = [models.Index(fields=["device_import", "result", "line"])]

    def __str__(self):
        return f"line {self.line}: {self.get_result_display()}"


class AutopilotEnrollment(models.Model):
    """An enrollment recognised as Autopilot: which imported record it matched (if any), how, and
    the profile to apply. Applying it (groups, TenantLockdown, apps, ESP) needs the management
    channel; `applied_at` is set when that is done."""

    class MatchedBy(models.TextChoices):
        ZTD_ID = "ztd_id", "ZeroTouchProvisioning id"
        CORRELATOR = "correlator", "Offline profile ZtdCorrelationId"
        SERIAL = "serial", "Serial number"
        HARDWARE_HASH = "hardware_hash", "Hardware hash"

    device = models.OneToOneField("enrollment.Device", related_name="autopilot", on_delete=models.CASCADE)
    record = models.ForeignKey(AutopilotDevice, null=True, blank=True, related_name="enrollments",
                               on_delete=models.SET_NULL)
    matched_by = models.CharField(max_length=16, choices=MatchedBy.choices)
    profile = models.ForeignKey(Profile, null=True, blank=True, related_name="+", on_delete=models.SET_NULL,
                                help_text="The profile to apply to the device")
    profile_reason = models.CharField(max_length=255, blank=True)
    correlation_id = models.CharField("offline correlation id", max_length=64, blank=True)
    user_applied = models.BooleanField(default=False, help_text="The record's assigned user became the device's user")
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When the profile's groups, TenantLockdown and apps were applied")

    class Meta:
        verbose_name = "Autopilot enrollment"
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.device} ({self.get_matched_by_display()})"


# The optional Microsoft Graph connector's models live with it; imported here so Django finds them.
from .graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync, GraphTagGroup  # noqa: E402,F401
