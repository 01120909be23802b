"""Windows Autopilot: deployment profiles, the hardware records imported from Windows' CSV, the imports
themselves with their row-by-row report, and the link made when an imported device enrolls.

What the profile asks for beyond the offline file (configuration groups, TenantLockdown,
essential apps, the Enrollment Status Page) is applied when the enrollment is linked
(autopilot/status_page.py) and delivered over OMA-DM: AppInstall follows each essential app on each
device, ProvisioningItem each thing the Enrollment Status Page waits for.
"""
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower, Upper
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from invitations.models import InvalidTransition

from . import naming

# Locale names as Windows' OOBE takes them: language[-Script]-REGION ("en-US", "sr-Latn-RS").
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?-[A-Z]{2}$")
PRODUCT_CODE_RE = re.compile(r"^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$")
SHA256_RE = re.compile(r"^[0-9A-Fa-f]{64}$")
# Microsoft Store product ids are 12 upper-case letters and digits ("9WZDNCRFJ3PZ"); the installed
# package goes by its package family name ("Microsoft.CompanyPortal_8wekyb3d8bbwe"). StoreInstall needs
# both: the family name in the LocURI, the product id in the data (enterprisemodernappmanagement-csp).
STORE_ID_RE = re.compile(r"^[0-9A-Z]{12}$")
PFN_RE = re.compile(r"^[A-Za-z0-9.\-]{3,50}_[a-z0-9]{13}$")
# The SKU part of a Store id ("9WZDNCRFJ3PZ/0016"): four letters or digits (windows.services.store
# StoreSku.StoreId); StoreInstall's skuid.
STORE_SKU_RE = re.compile(r"^[0-9A-Z]{4}$")
# Store apps install for the signed-in user only (autopilot/essential_apps.py): refused where no user
# ever signs in during setup.
STORE_NEEDS_USER = _("Store apps install for the signed-in user (StoreInstall works in the user context only), and "
                      "a self-deploying profile has no user: use a user-driven profile, or an MSI app.")
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}$")
# The MsiInstallJob's Enforcement lets msiexec run 10 minutes and retries after 5 (autopilot/essential_apps.py):
# a stall time shorter than that would send an install again while Windows still retries it itself.
MIN_STALL_MINUTES = 15


class Profile(models.Model):
    """An Autopilot deployment profile, with the settings an Intune administrator knows."""

    class DeploymentMode(models.TextChoices):
        USER_DRIVEN = "user_driven", _("User-driven")
        SELF_DEPLOYING = "self_deploying", _("Self-deploying")

    class JoinType(models.TextChoices):
        ENTRA = "entra", _("Microsoft Entra joined")
        HYBRID = "hybrid", _("Microsoft Entra hybrid joined")

    class DeviceType(models.TextChoices):
        WINDOWS_PC = "windows_pc", _("Windows PC")
        HOLOLENS = "hololens2", _("HoloLens 2")

    class UserAccountType(models.TextChoices):
        STANDARD = "standard", _("Standard")
        ADMINISTRATOR = "administrator", _("Administrator")

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    device_type = models.CharField(_("device type"), max_length=16, choices=DeviceType.choices,
                                   default=DeviceType.WINDOWS_PC)
    deployment_mode = models.CharField(_("deployment mode"), max_length=16, choices=DeploymentMode.choices,
                                       default=DeploymentMode.USER_DRIVEN)
    allow_pre_provisioning = models.BooleanField(
        _("allow pre-provisioned deployment"), default=False,
        help_text=_("Lets a technician or reseller provision the device before the user gets it (formerly White Glove)."))
    join_type = models.CharField(_("join to Microsoft Entra ID as"), max_length=8, choices=JoinType.choices,
                                 default=JoinType.ENTRA)
    user_account_type = models.CharField(_("user account type"), max_length=16, choices=UserAccountType.choices,
                                         default=UserAccountType.STANDARD)
    hide_eula = models.BooleanField(_("hide the Microsoft Software License Terms"), default=True)
    hide_privacy_settings = models.BooleanField(_("hide privacy settings"), default=True)
    hide_change_account_options = models.BooleanField(_("hide change account options"), default=True)
    language = models.CharField(
        _("language (region)"), max_length=16, blank=True,
        help_text=_("A locale such as en-US or fr-FR; empty for the operating system default."))
    configure_keyboard = models.BooleanField(
        _("automatically configure keyboard"), default=False,
        help_text=_("Skips the keyboard page; needs a language."))
    device_name_template = models.CharField(
        _("device name template"), max_length=64, blank=True,
        help_text=_("Up to 15 characters once expanded: letters, digits and hyphens, not only digits. "
                  "%SERIAL% adds the serial number (Windows cuts it to fit), %RAND:x% adds x random digits."))
    convert_all_targeted_devices = models.BooleanField(
        _("convert all targeted devices to Autopilot"), default=False,
        help_text=_("Enrolled devices targeted by this profile are registered for Autopilot too."))
    autopilot_update_during_oobe = models.BooleanField(
        _("install Autopilot updates during setup"), default=False,
        help_text=_("When off, the offline file tells Windows to skip the Autopilot update check in setup."))
    tenant_lockdown = models.BooleanField(
        _("require network connection in setup (TenantLockdown)"), default=False,
        help_text=_("After a reset, the device cannot get past setup without the network, so it always "
                  "comes back to this organisation."))
    configuration_groups = models.ManyToManyField(
        "management.ConfigurationGroup", verbose_name=_("configuration groups"), blank=True, related_name="autopilot_profiles",
        help_text=_("Devices of this profile join these groups (by hand) when they enroll, and get their settings."))
    # The Enrollment Status Page (DMClient CSP, FirstSyncStatus).
    esp_enabled = models.BooleanField(
        _("show the Enrollment Status Page"), default=True,
        help_text=_("Windows shows setup progress (settings, apps) until everything is installed. When off, "
                  "Windows is told to skip the page."))
    esp_timeout_minutes = models.PositiveSmallIntegerField(
        _("time-out (minutes)"), default=60, validators=[MinValueValidator(1), MaxValueValidator(1440)],
        help_text=_("After this long, the page shows an error and the server reports the setup as failed (1 to 1440)."))
    esp_block_device = models.BooleanField(
        _("block device use until everything is installed"), default=True,
        help_text=_("When off, the user may leave the page before setup completes."))
    esp_allow_reset = models.BooleanField(_("on failure, offer \"Reset device\""), default=True)
    esp_allow_retry = models.BooleanField(_("on failure, offer \"Try again\""), default=False)
    esp_allow_continue = models.BooleanField(_("on failure, offer \"Continue anyway\""), default=False)
    esp_fail_on = models.CharField(
        _("setup fails when"), max_length=8, default="any",
        choices=[("any", _("an essential app or a setting fails")),
                 ("apps", _("an essential app fails (failed settings are only reported)"))])
    # MSI installs that park on the device (EnterpriseDesktopAppManagement Status stuck, or a device gone
    # quiet): autopilot/essential_apps.py marks them stalled and sends them again.
    app_stall_minutes = models.PositiveSmallIntegerField(
        _("an MSI install is stalled after (minutes)"), default=20,
        validators=[MinValueValidator(0), MaxValueValidator(1440)],
        help_text=format_lazy(_("An MSI app whose install shows no progress (its Status node unchanged) for this long "
                                "is marked stalled and sent again. At least {minimum}, so that Windows' own retry of "
                                "msiexec comes first; 0 never marks installs stalled."), minimum=MIN_STALL_MINUTES))
    app_retry_count = models.PositiveSmallIntegerField(
        _("times a stalled install is sent again"), default=2, validators=[MaxValueValidator(10)],
        help_text=_("After that many, a still stalled install counts as failed (0 to 10)."))
    app_stall_blocks = models.BooleanField(
        _("an install still stalled after its retries fails the setup"), default=True,
        help_text=_("When off, the app is reported as failed but the Enrollment Status Page goes on without it."))
    is_default = models.BooleanField(
        _("default profile"), default=False,
        help_text=_("Given to Autopilot devices with no explicit profile and no matching group tag. At most one."))
    ztd_correlation_id = models.UUIDField(_("ZtdCorrelationId"), default=uuid.uuid4, unique=True, editable=False,
                                          help_text=_("Written in the offline file; Windows sends it back at enrollment."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")
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
    def block_in_status_page(self):
        """DMClient FirstSyncStatus/BlockInStatusPage: 0 lets the user leave; otherwise the flags of the
        remediation buttons shown on failure (0x1 reset, 0x2 try again, 0x4 continue anyway)."""
        if not self.esp_block_device:
            return 0
        return (1 if self.esp_allow_reset else 0) | (2 if self.esp_allow_retry else 0) | (4 if self.esp_allow_continue else 0)

    @property
    def is_self_deploying(self):
        return self.deployment_mode == self.DeploymentMode.SELF_DEPLOYING

    def clean(self):
        errors = {}
        if self.device_type == self.DeviceType.HOLOLENS:
            if self.deployment_mode != self.DeploymentMode.SELF_DEPLOYING:
                errors["deployment_mode"] = _("HoloLens 2 profiles must be self-deploying: HoloLens supports no other mode.")
            if self.join_type != self.JoinType.ENTRA:
                errors["join_type"] = _("HoloLens 2 can only join Microsoft Entra ID, not a hybrid domain.")
            if self.allow_pre_provisioning:
                errors["allow_pre_provisioning"] = _("HoloLens 2 does not support pre-provisioned deployment.")
        elif self.is_self_deploying and self.join_type == self.JoinType.HYBRID:
            errors["join_type"] = _("Self-deploying mode supports Microsoft Entra join only, not hybrid join.")
        if self.is_self_deploying and self.pk is not None and self.essential_apps.filter(
                kind=EssentialApp.Kind.STORE).exists():
            errors["deployment_mode"] = format_lazy(_("This profile has Store apps. {reason} Remove them first."),
                                                    reason=STORE_NEEDS_USER)
        if self.language and not LOCALE_RE.match(self.language):
            errors["language"] = _("Give a locale such as en-US or fr-FR, or leave it empty for the OS default.")
        if self.esp_enabled and self.esp_block_device and not (
                self.esp_allow_reset or self.esp_allow_retry or self.esp_allow_continue):
            errors["esp_allow_reset"] = (_("A blocking status page needs a way out when setup fails: offer reset, "
                                         "try again or continue anyway."))
        if 0 < (self.app_stall_minutes or 0) < MIN_STALL_MINUTES:
            errors["app_stall_minutes"] = _("Give at least %(minimum)d minutes, so that Windows' own retry of the "
                                            "install comes first, or 0 to never mark installs stalled.") % {
                                                "minimum": MIN_STALL_MINUTES}
        if self.configure_keyboard and not self.language:
            errors["configure_keyboard"] = _("Windows can only pick the keyboard for you when the language is set.")
        if self.device_name_template:
            if self.join_type == self.JoinType.HYBRID:
                errors["device_name_template"] = (_("Hybrid-joined devices are named by the domain join configuration; "
                                                  "leave the template empty."))
            else:
                problem = naming.template_error(self.device_name_template)
                if problem:
                    errors["device_name_template"] = problem
        if errors:
            raise ValidationError(errors)


class GroupTagRule(models.Model):
    """Devices imported with this group tag get this profile (unless one is assigned explicitly)."""

    profile = models.ForeignKey(Profile, verbose_name=_("profile"), related_name="group_tags", on_delete=models.CASCADE)
    tag = models.CharField(_("tag"), max_length=128)

    class Meta:
        verbose_name = _("group tag rule")
        verbose_name_plural = _("group tag rules")
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
            raise ValidationError({"tag": _("A group tag cannot be empty.")})


class EssentialApp(models.Model):
    """An app a profile installs during provisioning: an MSI through EnterpriseDesktopAppManagement, a
    Microsoft Store app through EnterpriseModernAppManagement (autopilot/essential_apps.py)."""

    class Kind(models.TextChoices):
        MSI = "msi", _("MSI (line-of-business)")
        STORE = "store", _("Microsoft Store / MSIX")

    profile = models.ForeignKey(Profile, verbose_name=_("profile"), related_name="essential_apps",
                                on_delete=models.CASCADE)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.MSI)
    msi_url = models.URLField(_("MSI URL"), max_length=1000, blank=True)
    product_code = models.CharField(_("product code"), max_length=38, blank=True,
                                    help_text=_("{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}"))
    sha256 = models.CharField(_("SHA-256 of the MSI"), max_length=64, blank=True)
    version = models.CharField(_("MSI product version"), max_length=32, blank=True, default="1.0.0",
                               help_text=_("The version the MSI installs; Windows compares it to decide on an upgrade."))
    command_line = models.CharField(_("msiexec options"), max_length=500, blank=True, default="/quiet",
                                    help_text=_("Options given to msiexec, e.g. /quiet PROPERTY=value"))
    store_id = models.CharField(_("Store product id"), max_length=80, blank=True, help_text=_("e.g. 9WZDNCRFJ3PZ"))
    package_family_name = models.CharField(_("package family name"),
        max_length=80, blank=True, help_text=_("The Store app's package family name, e.g. Microsoft.CompanyPortal_8wekyb3d8bbwe"))
    store_sku = models.CharField(
        _("Store SKU"), max_length=4, blank=True, default="0016",
        help_text=_("The app's SKU in the Microsoft Store, 4 letters or digits: the part after the slash of the SKU's "
                  "Store id (product id/SKU, shown by Partner Center or the Store's catalogue for the product). "
                  "0016 is the SKU of a free public app."))
    store_claim_seat = models.BooleanField(
        _("let Windows claim a licence seat"), default=False,
        help_text=_("Off: the user's seat is assigned through your Store licensing before the install. On: Windows "
                  "claims a seat for the user itself when one is free."))

    class Meta:
        verbose_name = _("essential app")
        verbose_name_plural = _("essential apps")
        ordering = ["profile", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        try:
            profile = self.profile  # set, though maybe unsaved, when the profile's form adds the app
        except Profile.DoesNotExist:
            profile = None
        if self.kind == self.Kind.MSI and profile is not None and profile.device_type == Profile.DeviceType.HOLOLENS:
            errors["kind"] = _("HoloLens 2 installs Store (UWP/MSIX) apps only, not MSI.")
        if self.kind == self.Kind.MSI:
            if not self.msi_url:
                errors["msi_url"] = _("An MSI app needs the URL devices download it from.")
            elif not self.msi_url.lower().startswith("https://"):
                errors["msi_url"] = _("Devices only download MSI files over https://.")
            if not PRODUCT_CODE_RE.match(self.product_code):
                errors["product_code"] = _("Give the MSI product code as a GUID in braces, e.g. {9BE6A8D4-...}.")
            if not SHA256_RE.match(self.sha256):
                errors["sha256"] = _("Give the file's SHA-256 as 64 hexadecimal characters.")
            else:
                self.sha256 = self.sha256.upper()
            if not VERSION_RE.match(self.version):
                errors["version"] = _("Give the MSI's product version, e.g. 1.0.0 or 24.1.2.7.")
            if any(not c.isprintable() for c in self.command_line):
                errors["command_line"] = _("The msiexec options must fit on one line.")
        else:
            if PFN_RE.match(self.store_id) and not self.package_family_name:
                # Profiles made before Store delivery kept the family name here.
                self.package_family_name, self.store_id = self.store_id, ""
            if not STORE_ID_RE.match(self.store_id):
                errors["store_id"] = _("Give the Store product id: 12 letters and digits, e.g. 9WZDNCRFJ3PZ.")
            if not PFN_RE.match(self.package_family_name):
                errors["package_family_name"] = (_("Give the package family name (Name_publisherid), e.g. "
                                                 "Microsoft.CompanyPortal_8wekyb3d8bbwe."))
            self.store_sku = self.store_sku.strip().upper()
            if not STORE_SKU_RE.match(self.store_sku):
                errors["store_sku"] = _("Give the app's Store SKU: 4 letters or digits, e.g. 0016.")
            if profile is not None and profile.is_self_deploying:
                errors["kind"] = STORE_NEEDS_USER
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

    serial_number = models.CharField(_("serial number"), max_length=64)
    serial_key = models.CharField(_("serial key"), max_length=64, unique=True, editable=False,
                                  help_text=_("The serial number upper-cased: serials compare without case"))
    product_id = models.CharField(_("Windows Product ID"), max_length=64, blank=True)
    hardware_hash = models.TextField(_("hardware hash"), blank=True)
    hardware_hash_digest = models.CharField(_("hardware hash digest"), max_length=64, blank=True, db_index=True,
                                            editable=False,
                                            help_text=_("SHA-256 of the decoded hardware hash, to match it quickly"))
    group_tag = models.CharField(_("group tag"), max_length=128, blank=True, db_index=True)
    assigned_user = models.EmailField(_("assigned user"), blank=True,
                                      help_text=_("The user the device is for (its UPN)"))
    ztd_id = models.CharField(_("ZTD id"), max_length=64, blank=True, db_index=True,
                              help_text=_("The device's Zero Touch id in Microsoft's Autopilot service, when known"))
    profile = models.ForeignKey(Profile, verbose_name=_("profile"), null=True, blank=True,
                                related_name="assigned_devices",
                                on_delete=models.SET_NULL, help_text=_("Explicitly assigned profile"))
    profile_assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("profile assigned by"),
                                            null=True, blank=True, related_name="+",
                                            on_delete=models.SET_NULL)
    profile_assigned_at = models.DateTimeField(_("profile assigned at"), null=True, blank=True)
    source_import = models.ForeignKey("DeviceImport", verbose_name=_("source import"), null=True, blank=True,
                                      related_name="+",
                                      on_delete=models.SET_NULL)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    objects = AutopilotDeviceQuerySet.as_manager()

    class Meta:
        verbose_name = _("Autopilot device")
        verbose_name_plural = _("Autopilot devices")
        ordering = ["serial_key"]
        # Enrollment matching finds a record by ZeroTouchProvisioning id without case
        # (autopilot/matching.py): UPPER(ztd_id) = UPPER(%s) must not scan 100,000 imported rows.
        indexes = [models.Index(Upper("ztd_id"), name="autopilot_device_ztd_upper_idx")]

    def __str__(self):
        return self.serial_number

    @property
    def enrollment_state(self):
        """"enrolled" when a live enrollment of this hardware is linked to the record, else "pending":
        from the row's `is_enrolled` when it was read with_state(), else one query."""
        enrolled = getattr(self, "is_enrolled", None)
        if enrolled is None:
            enrolled = self.enrollments.filter(device__status="enrolled").exists()
        return "enrolled" if enrolled else "pending"

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
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    file_name = models.CharField(_("file name"), max_length=255)
    file_size = models.PositiveBigIntegerField(_("file size"), default=0)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(_("error"), blank=True, help_text=_("Why the file as a whole could not be read"))
    total_rows = models.PositiveIntegerField(_("total rows"), default=0,
                                             help_text=_("Data lines counted at upload (for the progress bar)"))
    processed_rows = models.PositiveIntegerField(_("processed rows"), default=0)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    unchanged_count = models.PositiveIntegerField(_("unchanged"), default=0)
    failed_count = models.PositiveIntegerField(_("refused"), default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("uploaded by"), null=True, blank=True,
                                    related_name="+",
                                    on_delete=models.SET_NULL)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    enqueued_at = models.DateTimeField(_("enqueued at"), null=True, blank=True,
                                       help_text=_("When its task reached the broker (empty: the sweep queues it)"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("device import")
        verbose_name_plural = _("device imports")
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

    device_import = models.ForeignKey(DeviceImport, verbose_name=_("device import"), related_name="chunks",
                                      on_delete=models.CASCADE)
    index = models.PositiveIntegerField(_("index"))
    data = models.BinaryField(_("data"))

    class Meta:
        verbose_name = _("device import chunk")
        verbose_name_plural = _("device import chunks")
        ordering = ["device_import", "index"]
        constraints = [models.UniqueConstraint(fields=["device_import", "index"], name="unique_import_chunk")]


class ImportRow(models.Model):
    """The result of one data line of an import."""

    class Result(models.TextChoices):
        CREATED = "created", _("Created")
        UPDATED = "updated", _("Updated")
        UNCHANGED = "unchanged", _("Unchanged")
        FAILED = "failed", _("Refused")

    device_import = models.ForeignKey(DeviceImport, verbose_name=_("device import"), related_name="rows",
                                      on_delete=models.CASCADE)
    line = models.PositiveIntegerField(_("line"))
    serial_number = models.CharField(_("serial number"), max_length=255, blank=True)
    result = models.CharField(_("result"), max_length=10, choices=Result.choices)
    message = models.TextField(_("message"), blank=True)
    device = models.ForeignKey(AutopilotDevice, verbose_name=_("device"), null=True, blank=True, related_name="+",
                               on_delete=models.SET_NULL)
    # What this line claimed for the in-file duplicate check (autopilot/imports.py, Importer._check_in_file):
    # the serial key and the hardware hash's digest when it was the first line of its file with them,
    # else empty. Later batches, and a resumed import, read them back instead of keeping every line's
    # in memory.
    serial_key = models.CharField(_("serial key"), max_length=64, blank=True, editable=False)
    hardware_hash_digest = models.CharField(_("hardware hash digest"), max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name = _("import row")
        verbose_name_plural = _("import rows")
        ordering = ["device_import", "line"]
        indexes = [models.Index(fields=["device_import", "result", "line"])]
        # One line of a file claims a serial, one a hardware hash: the first (the indexes of the look-up).
        constraints = [
            models.UniqueConstraint(fields=["device_import", "serial_key"], condition=~models.Q(serial_key=""),
                                    name="import_row_serial_claimed_once"),
            models.UniqueConstraint(fields=["device_import", "hardware_hash_digest"],
                                    condition=~models.Q(hardware_hash_digest=""), name="import_row_hash_claimed_once"),
        ]

    def __str__(self):
        return _("line %(line)s: %(result)s") % {"line": self.line, "result": self.get_result_display()}


class AutopilotEnrollment(models.Model):
    """An enrollment recognised as Autopilot: which imported record it matched (if any), how, the
    profile applied to it (autopilot/status_page.py sets `applied_at`) and where its Enrollment Status
    Page stands (`esp_state`, with one ProvisioningItem per thing the page waits for)."""

    class MatchedBy(models.TextChoices):
        ZTD_ID = "ztd_id", _("ZeroTouchProvisioning id")
        CORRELATOR = "correlator", _("Offline profile ZtdCorrelationId")
        SERIAL = "serial", _("Serial number")
        HARDWARE_HASH = "hardware_hash", _("Hardware hash")

    class EspState(models.TextChoices):
        NONE = "none", _("Not tracked")
        SKIPPED = "skipped", _("Status page skipped")
        TRACKING = "tracking", _("In progress")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        TIMED_OUT = "timed_out", _("Timed out")

    FINISHED = {EspState.SUCCEEDED, EspState.FAILED, EspState.TIMED_OUT}

    device = models.OneToOneField("enrollment.Device", verbose_name=_("device"), related_name="autopilot",
                                  on_delete=models.CASCADE)
    record = models.ForeignKey(AutopilotDevice, verbose_name=_("record"), null=True, blank=True,
                               related_name="enrollments",
                               on_delete=models.SET_NULL)
    matched_by = models.CharField(_("matched by"), max_length=16, choices=MatchedBy.choices)
    profile = models.ForeignKey(Profile, verbose_name=_("profile"), null=True, blank=True, related_name="+",
                                on_delete=models.SET_NULL,
                                help_text=_("The profile to apply to the device"))
    profile_reason = models.CharField(_("profile reason"), max_length=255, blank=True)
    correlation_id = models.CharField(_("offline correlation id"), max_length=64, blank=True)
    user_applied = models.BooleanField(_("user applied"), default=False,
                                       help_text=_("The record's assigned user became the device's user"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True,
                                      help_text=_("When the profile's groups, TenantLockdown and apps were queued"))
    esp_state = models.CharField(_("setup status"), max_length=10, choices=EspState.choices, default=EspState.NONE,
                                 db_index=True)
    esp_started_at = models.DateTimeField(_("first session"), null=True, blank=True,
                                          help_text=_("The device's first check-in: the status page's clock starts"))
    esp_deadline = models.DateTimeField(_("time-out at"), null=True, blank=True)
    esp_timeout_minutes = models.PositiveSmallIntegerField(_("esp timeout minutes"), default=60,
                                                           help_text=_("Copied from the profile when applied"))
    esp_fail_on = models.CharField(_("esp fail on"), max_length=8, default="any",
                                   help_text=_("Copied from the profile when applied"))
    esp_finished_at = models.DateTimeField(_("finished"), null=True, blank=True,
                                           help_text=_("When IsSyncDone and ServerHasFinishedProvisioning were queued"))
    esp_note = models.CharField(_("esp note"), max_length=255, blank=True, help_text=_("Why the setup ended as it did"))
    esp_sync_done_command = models.ForeignKey("management.DeviceCommand", verbose_name=_("esp sync done command"),
                                              null=True, blank=True, related_name="+",
                                              on_delete=models.SET_NULL, help_text=_("The last IsSyncDone queued"))
    esp_acknowledged_at = models.DateTimeField(_("device told"), null=True, blank=True,
                                               help_text=_("When the device answered IsSyncDone"))
    # The user phase (account setup) of the page: the items only a signed-in user can complete
    # (Store apps), followed and ended through ./User/…/FirstSyncStatus once a user signed in.
    user_esp_state = models.CharField(_("account setup status"), max_length=10, choices=EspState.choices,
                                      default=EspState.NONE, db_index=True)
    user_esp_started_at = models.DateTimeField(_("user signed in"), null=True, blank=True,
                                               help_text=_("The first session with a signed-in user: the account "
                                                         "setup's clock starts"))
    user_esp_deadline = models.DateTimeField(_("account setup time-out at"), null=True, blank=True)
    user_esp_finished_at = models.DateTimeField(_("account setup finished"), null=True, blank=True)
    user_esp_note = models.CharField(_("account setup note"), max_length=255, blank=True)
    user_esp_sync_done_command = models.ForeignKey("management.DeviceCommand",
                                                   verbose_name=_("user esp sync done command"), null=True, blank=True,
                                                   related_name="+",
                                                   on_delete=models.SET_NULL,
                                                   help_text=_("The last user-scope IsSyncDone queued"))
    user_esp_acknowledged_at = models.DateTimeField(_("user page told"), null=True, blank=True,
                                                    help_text=_("When the device answered the user-scope IsSyncDone"))
    # DMClient FirstSyncStatus/SkipUserStatusPage (device only): the users who sign in after the account
    # setup was released (or every user, when the profile has nothing for the account setup) skip it.
    skip_user_page_command = models.ForeignKey(
        "management.DeviceCommand", null=True, blank=True, related_name="+", on_delete=models.SET_NULL,
        verbose_name=_("SkipUserStatusPage"),
        help_text=_("The SkipUserStatusPage queued so that later users skip the account-setup page"))

    class Meta:
        verbose_name = _("Autopilot enrollment")
        verbose_name_plural = _("Autopilot enrollments")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.device} ({self.get_matched_by_display()})"

    @property
    def esp_finished(self):
        return self.esp_state in self.FINISHED

    def mark_applied(self, *, track_esp, track_user_esp=False, timeout_minutes, fail_on):
        """`track_user_esp`: the page has items for the user phase too (Store apps)."""
        if self.applied_at is not None:
            raise InvalidTransition("applied", "applied")
        self.applied_at = timezone.now()
        self.esp_state = self.EspState.TRACKING if track_esp else self.EspState.SKIPPED
        if track_user_esp:
            self.user_esp_state = self.EspState.TRACKING
        self.esp_timeout_minutes, self.esp_fail_on = timeout_minutes, fail_on
        self.save(update_fields=["applied_at", "esp_state", "user_esp_state", "esp_timeout_minutes", "esp_fail_on"])

    @staticmethod
    def phase_field(phase, name):
        """The field of the device phase's or the user phase's page: `esp_<name>` or `user_esp_<name>`."""
        return f"esp_{name}" if phase == ProvisioningItem.Phase.DEVICE else f"user_esp_{name}"

    def phase_state(self, phase):
        return getattr(self, self.phase_field(phase, "state"))

    def start_clock(self, now, phase="device"):
        """The phase's first session (the device's first check-in; the first one with a signed-in user):
        its time-out runs from here."""
        state, started, deadline = (self.phase_field(phase, name) for name in ("state", "started_at", "deadline"))
        if getattr(self, state) != self.EspState.TRACKING or getattr(self, started) is not None:
            raise InvalidTransition(getattr(self, state), "started")
        setattr(self, started, now)
        setattr(self, deadline, now + timedelta(minutes=self.esp_timeout_minutes))
        self.save(update_fields=[started, deadline])

    def finish(self, state, note, now, phase="device"):
        fields = [self.phase_field(phase, name) for name in ("state", "note", "finished_at")]
        if getattr(self, fields[0]) != self.EspState.TRACKING or state not in self.FINISHED:
            raise InvalidTransition(getattr(self, fields[0]), state)
        for name, value in zip(fields, (state, note[:255], now)):
            setattr(self, name, value)
        self.save(update_fields=fields)

    def acknowledge(self, at, phase="device"):
        """The device answered the phase's IsSyncDone (or can no longer be reached): its page is over."""
        field = self.phase_field(phase, "acknowledged_at")
        setattr(self, field, at)
        self.save(update_fields=[field])

    def release_refused(self, note, now, phase="device"):
        """The device refused the phase's release (405: no user context) for as long as the page's time-out.
        Windows, never told that the server finished, ends such a page as failed (dmclient-csp,
        ServerHasFinishedProvisioning), so a page that succeeded on our side is recorded as timed out;
        the page is over."""
        state, note_field = self.phase_field(phase, "state"), self.phase_field(phase, "note")
        if getattr(self, state) not in self.FINISHED or getattr(self, self.phase_field(phase, "acknowledged_at")):
            raise InvalidTransition(getattr(self, state), "release refused")
        if getattr(self, state) == self.EspState.SUCCEEDED:
            setattr(self, state, self.EspState.TIMED_OUT)
        setattr(self, note_field, note[:255])
        self.save(update_fields=[state, note_field])
        self.acknowledge(now, phase)

    def counts(self, items=None):
        """{"expected", "done", "failed"} over the items (prefetched ones when there are, or `items` when the
        caller has read them)."""
        items = list(self.items.all()) if items is None else items
        return {"expected": len(items),
                "done": sum(1 for item in items if item.state == ProvisioningItem.State.DONE),
                "failed": sum(1 for item in items if item.state == ProvisioningItem.State.FAILED)}


class AppInstall(models.Model):
    """One essential app on one device: the install command queued for it and what the device reported
    (autopilot/essential_apps.py). The Exec is asynchronous, so a 2xx only means "started": the app's Status node,
    read at later check-ins, says whether it installed."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        INSTALLING = "installing", _("Installing")
        INSTALLED = "installed", _("Installed")
        FAILED = "failed", _("Failed")
        STALLED = "stalled", _("Stalled, sent again")

    FINAL = {State.INSTALLED, State.FAILED}
    OPEN = [State.QUEUED, State.INSTALLING, State.STALLED]

    device = models.ForeignKey("enrollment.Device", verbose_name=_("device"), related_name="app_installs",
                               on_delete=models.CASCADE)
    app = models.ForeignKey(EssentialApp, verbose_name=_("app"), null=True, blank=True, related_name="installs",
                            on_delete=models.SET_NULL)
    name = models.CharField(_("name"), max_length=200, help_text=_("The app's name when it was queued"))
    kind = models.CharField(_("kind"), max_length=8, choices=EssentialApp.Kind.choices)
    identifier = models.CharField(_("identifier"), max_length=80,
                                  help_text=_("MSI product code or package family name"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    install_command = models.ForeignKey("management.DeviceCommand", verbose_name=_("install command"), null=True,
                                        blank=True, related_name="+",
                                        on_delete=models.SET_NULL)
    status_command = models.ForeignKey("management.DeviceCommand", verbose_name=_("status command"), null=True,
                                       blank=True, related_name="+",
                                       on_delete=models.SET_NULL, help_text=_("The last Get of the app's Status node"))
    error_command = models.ForeignKey("management.DeviceCommand", verbose_name=_("error command"), null=True,
                                      blank=True, related_name="+",
                                      on_delete=models.SET_NULL, help_text=_("The last Get of the app's LastError node"))
    reported_status = models.CharField(_("status node"), max_length=32, blank=True,
                                       help_text=_("The last value of the app's Status node"))
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    polls = models.PositiveSmallIntegerField(_("polls"), default=0, help_text=_("Status reads so far"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    # Stalled installs (MSI; autopilot/essential_apps.py): the profile's settings, copied when queued.
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=1, help_text=_("Install commands sent so far"))
    progress_at = models.DateTimeField(_("last progress"), default=timezone.now,
                                       help_text=_("When the install last moved: queued, started, Status changed"))
    stalls_at = models.DateTimeField(_("stalled at if no progress by"), null=True, blank=True, db_index=True,
                                     help_text=_("Empty when the install is never marked stalled"))
    stalled_at = models.DateTimeField(_("last stalled"), null=True, blank=True,
                                      help_text=_("When the install was last found stalled"))
    stall_minutes = models.PositiveSmallIntegerField(_("stall minutes"), default=0,
                                                     help_text=_("Copied from the profile when queued"))
    retry_count = models.PositiveSmallIntegerField(_("retry count"), default=0,
                                                   help_text=_("Copied from the profile when queued"))
    stall_blocks = models.BooleanField(_("stall blocks"), default=True,
                                       help_text=_("Copied from the profile when queued"))

    class Meta:
        verbose_name = _("app install")
        verbose_name_plural = _("app installs")
        ordering = ["device", "name"]
        constraints = [models.UniqueConstraint(fields=["device", "kind", "identifier"], name="one_install_per_device_app")]

    def __str__(self):
        return _("%(app)s on %(device)s") % {"app": self.name, "device": self.device}

    def advance(self, state, now, *, error=""):
        """queued → installing → installed | failed (queued may fail or finish at once); installing →
        stalled (sent again) → installing, or failed."""
        if self.state in self.FINAL or (state == self.State.QUEUED):
            raise InvalidTransition(self.state, state)
        self.state, self.updated_at = state, now
        if error:
            self.last_error = error[:255]
        if state in self.FINAL:
            self.completed_at = now
        self.progressed(now)
        self.save(update_fields=["state", "updated_at", "last_error", "completed_at", "progress_at", "stalls_at"])

    def progressed(self, now):
        """The install moved: its stall clock starts again (not saved)."""
        self.progress_at = now
        open_msi = self.kind == EssentialApp.Kind.MSI and self.state not in self.FINAL and self.stall_minutes
        self.stalls_at = now + timedelta(minutes=self.stall_minutes) if open_msi else None

    @classmethod
    def stalled_q(cls, prefix=""):
        """The installs found stalled and not over it: waiting for the install sent again, or given up."""
        gave_up = {f"{prefix}state": cls.State.FAILED, f"{prefix}stalled_at": models.F(f"{prefix}completed_at")}
        return models.Q(**{f"{prefix}state": cls.State.STALLED}) | models.Q(**gave_up)

    @property
    def gave_up_stalled(self):
        """Failed because it stayed stalled after its retries (the give-up sets both times to the same now)."""
        return self.state == self.State.FAILED and self.stalled_at is not None and self.stalled_at == self.completed_at

    @property
    def stalled(self):
        return self.state == self.State.STALLED or self.gave_up_stalled

    @property
    def failure_counts(self):
        """Whether the Enrollment Status Page counts this install's failure: an install given up after
        stalling as its profile says (app_stall_blocks), any other failure always."""
        return self.stall_blocks or not self.gave_up_stalled


class ProvisioningItem(models.Model):
    """One thing an Autopilot device's Enrollment Status Page waits for: a setting of its groups, the
    TenantLockdown node, or an essential app. Its state follows the setting's or app's own record."""

    class Kind(models.TextChoices):
        POLICY = "policy", _("Setting")
        MSI = "msi", _("MSI app")
        MODERN = "modern", _("Store app")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    class Phase(models.TextChoices):
        DEVICE = "device", _("Device setup")
        USER = "user", _("Account setup")

    enrollment = models.ForeignKey(AutopilotEnrollment, verbose_name=_("enrollment"), related_name="items",
                                   on_delete=models.CASCADE)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    phase = models.CharField(_("phase"), max_length=8, choices=Phase.choices, default=Phase.DEVICE,
                             help_text=_("Device setup, or account setup once a user signed in (Store apps)"))
    key = models.CharField(_("key"), max_length=1024,
                           help_text=_("The LocURI, or the app's product code or family name"))
    label = models.CharField(_("label"), max_length=255)
    command = models.ForeignKey("management.DeviceCommand", verbose_name=_("command"), null=True, blank=True,
                                related_name="+",
                                on_delete=models.SET_NULL, help_text=_("A command of its own (TenantLockdown)"))
    app_install = models.ForeignKey(AppInstall, verbose_name=_("app install"), null=True, blank=True,
                                    related_name="+", on_delete=models.SET_NULL)
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.PENDING)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("provisioning item")
        verbose_name_plural = _("provisioning items")
        ordering = ["enrollment", "pk"]

    def __str__(self):
        return self.label

    def settle(self, state, detail="", *, now):
        if self.state != self.State.PENDING or state == self.State.PENDING:
            raise InvalidTransition(self.state, state)
        self.state, self.detail, self.completed_at = state, detail[:255], now
        self.save(update_fields=["state", "detail", "completed_at"])

# The optional Microsoft Graph connector's models live with it; imported here so Django finds them.
from .graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync, GraphTagGroup  # noqa: E402,F401
