"""The enrolled devices (our PKI is the pki app)."""
from django.conf import settings
from django.core.validators import MinValueValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from invitations.models import InvalidTransition
from mdmportal import outbound
from mdmportal.rows import Columns

from . import signals


class DeviceQuerySet(models.QuerySet):
    def enrolled(self):
        """Devices whose current enrollment is live (not replaced, unenrolled or retired)."""
        return self.filter(status=Device.Status.ENROLLED)

    def of_hardware(self, device_id, hw_dev_id):
        """Enrollments, live or not, of the hardware a request names: same DeviceID, or same HWDevID
        unless it is all zeros (VMs and some tools send zeros, which identify nothing).
        These ids are the client's own claims (MS-MDE2 AdditionalContext): they find the earlier
        enrollments, they never prove that the request comes from that hardware
        (enrollment/reenrollment.py decides who may replace what)."""
        match = models.Q(device_id__iexact=device_id)
        if hw_dev_id and hw_dev_id.strip("0"):
            match |= models.Q(hw_dev_id__iexact=hw_dev_id)
        return self.filter(match)

    def same_hardware(self, device_id, hw_dev_id):
        """Live enrollments of this hardware (of_hardware)."""
        return self.enrolled().of_hardware(device_id, hw_dev_id)


class Device(models.Model):
    """One enrollment of a Windows PC or HoloLens 2 (a re-enrollment of the same hardware is a new
    row, and the old one becomes "replaced" when enrollment/reenrollment.py lets it).

    APPAUTH secrets: OMA-DM digest (syncml:auth-md5) only ever needs H = b64(md5("name:secret")) and
    the current nonce, so we keep H for each direction and never the clear secrets handed to the
    device. H still lets someone who steals the database answer a digest challenge as that device,
    which is why the management channel relies on the client certificate first.
    """

    class Kind(models.TextChoices):
        PC = "pc", _("PC")
        HOLOLENS = "hololens2", _("HoloLens 2")

    class EnrollmentType(models.TextChoices):
        FULL = "Full", _("User (Full)")
        DEVICE = "Device", _("Device")

    class Method(models.TextChoices):
        ONPREMISE = "onpremise", _("Password (on-premise)")
        FEDERATED = "federated", _("Federated sign-in page")
        PIN = "pin", _("One-time registration PIN")
        PPKG = "ppkg", _("Provisioning package")
        ENTRA = "entra", _("Entra ID")

    class Status(models.TextChoices):
        ENROLLED = "enrolled", _("Enrolled")
        REPLACED = "replaced", _("Replaced by a re-enrollment")
        UNENROLLED = "unenrolled", _("Unenrolled")
        RETIRED = "retired", _("Retired")

    # GetProductInfo SKU of "Windows Holographic for Business" (PRODUCT_HOLOGRAPHIC_BUSINESS, 0x88).
    HOLOGRAPHIC_EDITION = 136

    device_id = models.CharField(_("DeviceID"), max_length=64, db_index=True)
    hw_dev_id = models.CharField(_("HWDevID"), max_length=128, blank=True, db_index=True)
    name = models.CharField(_("name"), max_length=255, blank=True)
    os_version = models.CharField(_("OS version"), max_length=64, blank=True)
    os_edition = models.PositiveIntegerField(_("OS edition (SKU)"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.PC)
    enrollment_type = models.CharField(_("enrollment type"), max_length=8, choices=EnrollmentType.choices)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"), related_name="devices", null=True,
                             blank=True,
                             on_delete=models.SET_NULL)
    upn = models.CharField(_("UPN"), max_length=254, blank=True, help_text=_("The name the device signed in with"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ENROLLED,
                              db_index=True)
    replaced_by = models.ForeignKey("self", verbose_name=_("replaced by"), null=True, blank=True, related_name="+",
                                    on_delete=models.SET_NULL)
    certificate_serial = models.CharField(_("certificate serial"), max_length=64, unique=True)
    certificate_thumbprint = models.CharField(_("certificate thumbprint"), max_length=40, unique=True,
                                              help_text=_("Uppercase hex SHA-1 of the DER certificate"))
    certificate_not_after = models.DateTimeField(_("certificate not after"))
    certificate_renewed_at = models.DateTimeField(_("certificate renewed at"), null=True, blank=True,
                                                  help_text=_("Last ROBO renewal"))
    previous_certificate_serial = models.CharField(_("previous certificate serial"),
        max_length=64, blank=True, db_index=True, editable=False,
        help_text=_("The certificate the last renewal replaced, accepted until the device presents the new one"),
    )
    previous_certificate_thumbprint = models.CharField(_("previous certificate thumbprint"), max_length=40,
                                                       blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    context_items = models.JSONField(_("context items"),
        default=list, blank=True,
        help_text=_("AdditionalContext of the enrollment request as [name, value] pairs, in order (MAC repeats)"),
    )
    pin_enrollment = models.ForeignKey(
        "PinEnrollment", verbose_name=_("pin enrollment"), null=True, blank=True, related_name="devices", on_delete=models.PROTECT,
        help_text=_("The provisioning package (PIN enrollment) this device enrolled with"),
    )
    federated_token_id = models.CharField(_("federated token id"),
        max_length=64, unique=True, null=True, blank=True, editable=False,
        help_text=_("jti of the sign-in token spent by this enrollment (a token enrolls once)"),
    )
    enrollment_request_digest = models.CharField(_("enrollment request digest"),
        max_length=64, blank=True, db_index=True, editable=False,
        help_text=_("Keyed hash (HMAC with SECRET_KEY) of the enrollment's RequestSecurityToken, its credentials "
                  "and request, to answer the very same message again after a lost answer (enrollment/rst_retry.py)"),
    )
    entra_device_id = models.CharField(
        _("Entra device id"), max_length=64, blank=True, db_index=True,
        help_text=_("The deviceid claim of the Entra token that enrolled the device (Entra join)"),
    )
    released_for_reenrollment_at = models.DateTimeField(
        _("released for re-enrollment"), null=True, blank=True, editable=False,
        help_text=_("An administrator allowed the next enrollment of this hardware, by anyone, to replace "
                  "this device (spent by that enrollment)"),
    )
    released_for_reenrollment_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+", on_delete=models.SET_NULL,
        editable=False, verbose_name=_("released by"),
    )
    appsrv_digest = models.CharField(_("appsrv digest"), max_length=64, editable=False,
                                     help_text=_("b64(md5(DeviceID:secret)) to check the device's digest"))
    appsrv_nonce = models.CharField(_("appsrv nonce"), max_length=64, editable=False)
    client_digest = models.CharField(_("client digest"), max_length=64, editable=False,
                                     help_text=_("b64(md5(provider:secret)) to authenticate to the device"))
    client_nonce = models.CharField(_("client nonce"), max_length=64, editable=False)
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True,
                                        help_text=_("Last OMA-DM session message"))
    unenrolled_at = models.DateTimeField(_("unenrolled at"), null=True, blank=True)
    login_status = models.CharField(_("login status"), max_length=16, blank=True,
                                    help_text=_("Last 1224 com.microsoft/MDM/LoginStatus: user, others or none"))
    # Inventory (DevInfo, DevDetail, DeviceStatus CSPs), collected over OMA-DM by management/inventory.py.
    manufacturer = models.CharField(_("manufacturer"), max_length=255, blank=True)
    model = models.CharField(_("model"), max_length=255, blank=True)
    serial_number = models.CharField(_("serial number"), max_length=255, blank=True, db_index=True)
    os_platform = models.CharField(_("OS platform"), max_length=255, blank=True)
    architecture = models.CharField(_("architecture"), max_length=32, blank=True)
    total_ram_mb = models.PositiveIntegerField(_("RAM (MB)"), null=True, blank=True)
    hardware_data = models.TextField(_("DeviceHardwareData"), blank=True, help_text=_("Autopilot hardware hash"))
    inventory = models.JSONField(_("inventory"), default=dict, blank=True,
                                 help_text=_("Every inventory node read, by LocURI"))
    inventory_requested_at = models.DateTimeField(_("inventory requested at"), null=True, blank=True)
    inventory_at = models.DateTimeField(_("inventory received"), null=True, blank=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["-enrolled_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "status"]),
            # Every RST and OMA-DM session finds the hardware's enrollments case-insensitively
            # (same_hardware, omadm: UPPER(device_id) = UPPER(%s)), inside the enrollment's locks.
            models.Index(Upper("device_id"), name="device_device_id_upper_idx"),
            models.Index(Upper("hw_dev_id"), name="device_hw_dev_id_upper_idx"),
            # The console's search by a whole email address (mdmportal/search.py email_search_fields).
            models.Index(Upper("upn"), name="device_upn_upper_idx"),
        ]
        # Destructive device actions (management/actions.py) each have their own permission; sync,
        # reboot and rename need change_device.
        permissions = [
            ("wipe_device", "Can wipe devices"),
            ("retire_device", "Can retire devices"),
            ("send_custom_command", "Can send custom OMA-DM commands to devices"),
            ("release_device", "Can release devices for re-enrollment by another user"),
        ]

    def __str__(self):
        return self.name or self.device_id

    @classmethod
    def kind_for_edition(cls, os_edition):
        return cls.Kind.HOLOLENS if os_edition == cls.HOLOGRAPHIC_EDITION else cls.Kind.PC

    def mark_replaced(self, by):
        """A new enrollment of the same hardware took over: this one's certificate is revoked."""
        if self.status != self.Status.ENROLLED:
            raise InvalidTransition(self.status, self.Status.REPLACED)
        self.status, self.replaced_by, self.revoked_at = self.Status.REPLACED, by, timezone.now()
        self.save(update_fields=["status", "replaced_by", "revoked_at"])

    @property
    def is_released_for_reenrollment(self):
        return self.released_for_reenrollment_at is not None

    def release_for_reenrollment(self, by):
        """An administrator lets the next enrollment of this hardware replace this device whoever
        enrolls it (a PC handed to someone else). The device stays managed until then."""
        if self.status != self.Status.ENROLLED:
            raise InvalidTransition(self.status, "released for re-enrollment")
        if self.is_released_for_reenrollment:
            raise InvalidTransition("released for re-enrollment", "released for re-enrollment")
        self.released_for_reenrollment_at = timezone.now()
        self.released_for_reenrollment_by = by if getattr(by, "is_authenticated", False) else None
        self.save(update_fields=["released_for_reenrollment_at", "released_for_reenrollment_by"])

    def renew_certificate(self, *, serial, thumbprint, not_after, renewed_from):
        """A ROBO renewal (MS-MDE2 3.5, enrollment/renewal.py) issued the certificate `serial` to replace
        the one whose serial is `renewed_from`.

        Windows swaps to the new certificate as soon as it reads our answer; if the answer is lost
        on the way, the device keeps the old one. So the certificate it renewed from stays accepted
        (the "previous" one) until the device first presents the new one (confirm_certificate), and
        a renewal signed by that previous certificate again replaces the new certificate the device
        never received. Any other certificate no longer counts."""
        if self.status != self.Status.ENROLLED or self.revoked_at is not None:
            raise InvalidTransition(self.status, "renewed")
        if renewed_from == self.certificate_serial:
            self.previous_certificate_serial = self.certificate_serial
            self.previous_certificate_thumbprint = self.certificate_thumbprint
        elif not renewed_from or renewed_from != self.previous_certificate_serial:
            raise InvalidTransition("renewed from a certificate it does not hold", "renewed")
        self.certificate_serial, self.certificate_thumbprint, self.certificate_not_after = serial, thumbprint, not_after
        self.certificate_renewed_at = timezone.now()
        self.save(update_fields=["certificate_serial", "certificate_thumbprint", "certificate_not_after",
                                 "certificate_renewed_at", "previous_certificate_serial",
                                 "previous_certificate_thumbprint"])

    def confirm_certificate(self):
        """The device presented its current certificate: the one it was renewed from is retired for
        good. Returns the retired serial, or "" when there was none."""
        retired = self.previous_certificate_serial
        if retired:
            self.previous_certificate_serial = self.previous_certificate_thumbprint = ""
            self.save(update_fields=["previous_certificate_serial", "previous_certificate_thumbprint"])
        return retired

    def mark_unenrolled(self):
        """The user removed the work account (1226 unenrollment alert): the certificate is revoked, and
        the apps above are told (signals.enrollment_ended: management closes the device's queue)."""
        if self.status != self.Status.ENROLLED:
            raise InvalidTransition(self.status, self.Status.UNENROLLED)
        now = timezone.now()
        self.status, self.unenrolled_at, self.revoked_at = self.Status.UNENROLLED, now, now
        self.save(update_fields=["status", "unenrolled_at", "revoked_at"])
        signals.enrollment_ended.send(Device, device=self, note="")

    def mark_retired(self):
        """An administrator retired the device (management/actions.py): its certificate is revoked, so it
        can no longer check in, and the apps above are told (signals.enrollment_ended: management cancels
        what is still queued for it)."""
        if self.status != self.Status.ENROLLED:
            raise InvalidTransition(self.status, self.Status.RETIRED)
        now = timezone.now()
        self.status, self.unenrolled_at, self.revoked_at = self.Status.RETIRED, now, now
        self.save(update_fields=["status", "unenrolled_at", "revoked_at"])
        signals.enrollment_ended.send(Device, device=self, note="The device was retired")


class RegistrationPinQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(consumed_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class RegistrationPin(models.Model):
    """A one-time registration PIN: server-generated, shown to its user once, stored
    only as a password hash, spent by the enrollment that uses it. At most one usable PIN per user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"), related_name="registration_pins",
                             on_delete=models.CASCADE)
    pin_hash = models.CharField(_("pin hash"), max_length=128, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
                                   related_name="+",
                                   on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(_("expires at"))
    consumed_at = models.DateTimeField(_("consumed at"), null=True, blank=True)
    consumed_by = models.ForeignKey(Device, verbose_name=_("consumed by"), null=True, blank=True, related_name="+",
                                    on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = RegistrationPinQuerySet.as_manager()

    class Meta:
        verbose_name = _("registration pin")
        verbose_name_plural = _("registration pins")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return _("Registration PIN of %(user)s") % {"user": self.user}

    @property
    def is_usable(self):
        return self.consumed_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    def consume(self, device):
        if not self.is_usable:
            raise InvalidTransition("spent" if self.consumed_at else "unusable", "consumed")
        self.consumed_at, self.consumed_by = timezone.now(), device
        self.save(update_fields=["consumed_at", "consumed_by"])

    def revoke(self):
        if not self.is_usable:
            raise InvalidTransition("unusable", "revoked")
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class PinEnrollmentQuerySet(models.QuerySet):
    def usable(self):
        """Not revoked and not expired (a locked or used-up one is still "usable" later)."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def with_device_count(self):
        return self.annotate(devices_used=models.Count(
            "devices", filter=~models.Q(devices__status=Device.Status.REPLACED)))


class PinEnrollment(models.Model):
    """Bulk enrollment from a provisioning package (Provisioning CSP, Enrollments): a service identity (UPN) and
    a server-generated PIN that a Windows Configuration Designer package carries as
    Workplace/Enrollments/{UPN}/Secret, so that many devices enroll on-premise with it.

    The PIN is shown once and stored only as a password hash. Devices enrolled with it belong to
    `owner`; the enrollment stops at `max_devices`, at `expires_at` and when revoked. Repeated wrong
    PINs from one address lock that address out (PinEnrollmentFailure); a flood from many addresses,
    far above real use, locks the package itself for a while, longer each time (enrollment/ppkg.py)."""

    name = models.CharField(_("name"), max_length=200)
    upn = models.EmailField(
        _("service identity (UPN)"), max_length=254, unique=True,
        help_text=_("The name the package signs in with (wsse:Username), e.g. enroll-lab@example.com"),
    )
    pin_hash = models.CharField(_("pin hash"), max_length=128, editable=False)
    pin_generation = models.PositiveIntegerField(_("pin generation"),
        default=1, editable=False, help_text=_("1 for the first PIN, +1 per regeneration (the package version)"))
    pin_changed_at = models.DateTimeField(_("pin changed at"), default=timezone.now, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("owner"), related_name="pin_enrollments",
                              on_delete=models.PROTECT,
                              help_text=_("The user the enrolled devices are attributed to"))
    expires_at = models.DateTimeField(_("expires at"))
    max_devices = models.PositiveIntegerField(_("maximum devices"), validators=[MinValueValidator(1)])
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    failed_attempts = models.PositiveIntegerField(_("failed attempts"),
        default=0, editable=False,
        help_text=_("Wrong PINs from any address since failures_since (the package-wide backstop)"))
    failures_since = models.DateTimeField(_("failures since"),
        null=True, blank=True, editable=False, help_text=_("Start of the backstop's window of wrong PINs"))
    lockouts = models.PositiveIntegerField(_("lockouts"),
        default=0, editable=False,
        help_text=_("Package-wide lockouts since the PIN was made or unlocked (each lasts longer)"))
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
                                   related_name="+",
                                   on_delete=models.SET_NULL, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = PinEnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("provisioning package")
        verbose_name_plural = _("provisioning packages")

    def __str__(self):
        return f"{self.name} ({self.upn})"

    def save(self, *args, **kwargs):
        # Compared case-insensitively by Windows and by us: stored lower-case so `unique` holds.
        self.upn = self.upn.strip().lower()
        super().save(*args, **kwargs)

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    @property
    def is_expired(self):
        return self.expires_at <= timezone.now()

    @property
    def is_usable(self):
        return not self.is_revoked and not self.is_expired

    @property
    def is_locked(self):
        return self.locked_until is not None and self.locked_until > timezone.now()

    def used_count(self):
        """Devices enrolled with it, re-enrollments of the same hardware counted once."""
        annotated = getattr(self, "devices_used", None)
        if annotated is not None:
            return annotated
        return self.devices.exclude(status=Device.Status.REPLACED).count()

    @property
    def status(self):
        if self.is_revoked:
            return "revoked"
        if self.is_expired:
            return "expired"
        if self.is_locked:
            return "locked"
        return "used up" if self.used_count() >= self.max_devices else "active"

    STATUS_LABELS = {"revoked": _("revoked"), "expired": _("expired"), "locked": _("locked"), "used up": _("used up"),
                     "active": _("active")}

    @property
    def status_label(self):
        """`status` in the reader's language (the API keeps the English value)."""
        return self.STATUS_LABELS[self.status]

    def replace_pin(self, pin_hash):
        """A new PIN: the old one stops working at once, and so does any lockout."""
        if self.is_revoked:
            raise InvalidTransition("revoked", "new PIN")
        self.pin_hash, self.pin_changed_at = pin_hash, timezone.now()
        self.pin_generation += 1
        self.failed_attempts, self.failures_since, self.lockouts, self.locked_until = 0, None, 0, None
        self.save(update_fields=["pin_hash", "pin_changed_at", "pin_generation", "failed_attempts", "failures_since",
                                 "lockouts", "locked_until", "updated_at"])
        self.address_failures.all().delete()

    def revoke(self):
        if self.is_revoked:
            raise InvalidTransition("revoked", "revoked")
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at", "updated_at"])

    def has_failures(self):
        return self.is_locked or bool(self.failed_attempts) or self.address_failures.exists()

    def unlock(self):
        """Forget every wrong PIN: the package's own lockout and every address's."""
        if not self.has_failures():
            raise InvalidTransition("unlocked", "unlocked")
        self.failed_attempts, self.failures_since, self.lockouts, self.locked_until = 0, None, 0, None
        self.save(update_fields=["failed_attempts", "failures_since", "lockouts", "locked_until", "updated_at"])
        self.address_failures.all().delete()

    def record_wrong_pin(self, *, limit, lockout, window):
        """Count a wrong PIN from anywhere against the backstop (call on a row locked with
        select_for_update): `limit` in `window` lock the package. A right PIN does not reset this count,
        so the backstop bounds guesses per window however busy the package is. Returns the lockout
        duration when this failure locks it, else None. `lockout(n)` is the duration of the n-th."""
        now = timezone.now()
        if self.failures_since is None or now - self.failures_since >= window:
            self.failed_attempts, self.failures_since = 0, now
        self.failed_attempts += 1
        duration = None
        if self.failed_attempts >= limit:
            duration = lockout(self.lockouts + 1)
            self.locked_until = now + duration
            self.lockouts += 1
            self.failed_attempts, self.failures_since = 0, None
        self.save(update_fields=["failed_attempts", "failures_since", "lockouts", "locked_until"])
        return duration


class PinEnrollmentFailure(models.Model):
    """Wrong PINs for one PIN enrollment from one client address (an IPv6 client's /64): enough of
    them in a row lock that address out of the package, for a little longer each time, while every
    other address keeps enrolling. The package's user name is predictable, so a lockout that stopped
    the whole package would let anyone stop an organisation's enrollments (OWASP Authentication Cheat
    Sheet, "Account Lockout": lockouts must not become a denial of service). Forgotten after a quiet
    window and at a right PIN from the address."""

    pin_enrollment = models.ForeignKey(PinEnrollment, verbose_name=_("pin enrollment"),
                                       related_name="address_failures", on_delete=models.CASCADE)
    address = models.CharField(_("address"), max_length=64,
                               help_text=_("The client address, or an IPv6 client's /64 network"))
    failed_attempts = models.PositiveIntegerField(_("failed attempts"), default=0,
                                                  help_text=_("Wrong PINs in a row from this address"))
    lockouts = models.PositiveIntegerField(_("lockouts"), default=0,
                                           help_text=_("Lockouts of this address in a row (each lasts longer)"))
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure at"))

    class Meta:
        verbose_name = _("pin enrollment failure")
        verbose_name_plural = _("pin enrollment failures")
        constraints = [models.UniqueConstraint(fields=["pin_enrollment", "address"],
                                               name="pin_enrollment_failure_per_address")]

    def __str__(self):
        return ngettext("%(address)s: %(count)d wrong PIN", "%(address)s: %(count)d wrong PINs",
                        self.failed_attempts) % {
            "address": self.address, "count": self.failed_attempts}

    @property
    def is_locked(self):
        return self.locked_until is not None and self.locked_until > timezone.now()

    def record_wrong_pin(self, *, limit, lockout, window):
        """As PinEnrollment.record_wrong_pin, for one address (call on a row locked with select_for_update,
        or a new one). After `window` without a wrong PIN the address starts again from nothing."""
        now = timezone.now()
        if self.last_failure_at is not None and now - self.last_failure_at >= window:
            self.failed_attempts, self.lockouts = 0, 0
        self.failed_attempts += 1
        self.last_failure_at = now
        duration = None
        if self.failed_attempts >= limit:
            duration = lockout(self.lockouts + 1)
            self.locked_until = now + duration
            self.lockouts += 1
            self.failed_attempts = 0
        self.save()
        return duration


# Microsoft Entra ID standard enrollment ("Microsoft Entra integration with MDM").

def mirror_url_error(url):
    """Why `url` cannot be the JWKS mirror URL, or "". Whoever answers it chooses the keys that sign
    acceptable Entra ID tokens, so it is https (OpenID Connect Discovery 1.0 §4: key sets travel over
    TLS); plain http only to this machine with ENTRA_ALLOW_LOOPBACK_HTTP, for test doubles."""
    if not url or outbound.is_https(url, allow_loopback_http=settings.ENTRA_ALLOW_LOOPBACK_HTTP):
        return ""
    return gettext("Use an https:// address: the keys that sign Entra ID tokens must not travel in clear "
                   "(plain http:// is accepted only on this machine, for tests, with ENTRA_ALLOW_LOOPBACK_HTTP).")


class EntraSettings(models.Model):
    """How this portal trusts the organisation's Entra ID tenant: a singleton row (pk=1).

    Entra enrollment is usable only when it is switched on and has at least one tenant, one audience
    and one active set of signing keys (`is_ready`)."""

    enabled = models.BooleanField(
        _("Entra ID enrollment"), default=False,
        help_text=_("Accept enrollments carrying an Entra ID token (Entra join, add a work account, "
                  "automatic enrollment). While on, discovery answers Federated to devices that offer it and "
                  "whose address is of a verified domain (all of them when no domain is listed)."),
    )
    # The organisation's Microsoft Entra tenant, entered once here: Entra enrollment accepts its tokens,
    # offline Autopilot profile files name it (autopilot/offline.py) and the Microsoft Graph connection
    # signs in to it (autopilot/graph_models.py).
    tenant_ids = models.JSONField(
        _("tenant ids"), default=list, blank=True,
        help_text=_("Directory (tenant) ids whose tokens are accepted (lowercase GUIDs); the first is the "
                    "organisation's own tenant"))
    tenant_domain = models.CharField(
        _("tenant's domain"), max_length=253, blank=True,
        help_text=_("The tenant's initial domain, such as contoso.onmicrosoft.com: offline Autopilot profile "
                    "files name the tenant by it"))
    audiences = models.JSONField(_("audiences"),
        default=list, blank=True,
        help_text=_("Accepted token audiences: the MDM application's App ID URI and/or its client id"),
    )
    domains = models.JSONField(
        _("verified domains"), default=list, blank=True,
        help_text=_("The tenants' verified domains (lowercase), e.g. contoso.com. While Entra ID enrollment is on, "
                  "discovery answers Federated to addresses of these domains and the organisation's own sign-in "
                  "method to other addresses; left empty, to every device that offers Federated."),
    )
    jwks_mirror_url = models.URLField(
        _("JWKS mirror URL"), blank=True, max_length=500,
        help_text=_("An https address on your network serving a copy of Microsoft's signing keys for the tenant "
                    "(login.microsoftonline.com, the tenant id, /discovery/v2.0/keys)"),
    )
    terms_text = models.TextField(
        _("terms of use"), blank=True,
        help_text=_("Shown on the terms-of-use page above the built-in text; leave empty for the built-in text only"),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("Entra ID settings")
        verbose_name_plural = _("Entra ID settings")

    def __str__(self):
        return str(_("Entra ID settings"))

    @classmethod
    def get(cls):
        # Every request of an Entra enrollment reads this row, some twice: its SELECT is written out
        # once (mdmportal/rows.py).
        settings_row = _ENTRA_SETTINGS.first(connection, pk=1)
        if settings_row is None:
            settings_row, _created = cls.objects.get_or_create(pk=1)
        return settings_row

    @property
    def tenant_id(self):
        """The organisation's own tenant: the first tenant id, or ""."""
        return self.tenant_ids[0] if self.tenant_ids else ""

    @property
    def is_ready(self):
        return bool(self.enabled and self.tenant_ids and self.audiences
                    and ACTIVE_KEY_IDS.exists(connection, active=True))

    def clean(self):
        problem = mirror_url_error(self.jwks_mirror_url)
        if problem:
            raise ValidationError({"jwks_mirror_url": problem})

    def covers_address(self, email):
        """Is the EmailAddress of a Discover (MS-MDE2) one of the tenants' users? Its domain among
        `domains`, both compared whatever their case. With no domains listed every address is
        (discovery cannot tell then), and so is no address: only an Entra device enrolling without a
        user sends none."""
        if not self.domains or not email:
            return True
        _local, at, domain = email.strip().rpartition("@")
        return bool(at) and domain.lower().rstrip(".") in {d.strip().lower().rstrip(".") for d in self.domains}

    def accepted_audiences(self):
        """The configured audiences, URIs also without/with their trailing slash: Entra writes the App
        ID URI as registered, and administrators paste it either way."""
        accepted = []
        for audience in self.audiences:
            accepted.append(audience)
            if "://" in audience:
                accepted.append(audience[:-1] if audience.endswith("/") else audience + "/")
        return accepted


class JwksSetQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)


class JwksSet(models.Model):
    """One imported JSON Web Key Set: Entra's token-signing public keys, as uploaded or fetched from
    the mirror. Several are kept (Microsoft rotates its keys); keys are looked up by `kid` across the
    active ones, newest first (enrollment/entra_keys.py)."""

    class Source(models.TextChoices):
        UPLOAD = "upload", _("Uploaded file")
        MIRROR = "mirror", _("Fetched from the mirror URL")

    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    source_url = models.URLField(_("fetched from"), blank=True, max_length=500)
    document = models.JSONField(_("document"), help_text=_("The public keys, {\"keys\": [...]}"))
    key_ids = models.JSONField(_("key ids (kid)"), default=list)
    sha256 = models.CharField(_("SHA-256"), max_length=64, editable=False)
    imported_at = models.DateTimeField(_("imported at"), default=timezone.now, db_index=True)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("imported by"), null=True, blank=True,
                                    related_name="+",
                                    on_delete=models.SET_NULL)
    active = models.BooleanField(_("active"), default=True,
                                 help_text=_("Inactive sets are kept for the record but never trusted"))

    objects = JwksSetQuerySet.as_manager()

    class Meta:
        verbose_name = _("JWKS set")
        verbose_name_plural = _("JWKS sets")
        ordering = ["-imported_at", "-pk"]

    def __str__(self):
        return ngettext("JWKS of %(when)s (%(count)d key)", "JWKS of %(when)s (%(count)d keys)", len(self.key_ids)) % {
            "when": f"{self.imported_at:%Y-%m-%d %H:%M}", "count": len(self.key_ids)}

    def deactivate(self):
        if not self.active:
            raise InvalidTransition("inactive", "inactive")
        self.active = False
        self.save(update_fields=["active"])

    def activate(self):
        if self.active:
            raise InvalidTransition("active", "active")
        self.active = True
        self.save(update_fields=["active"])


_ENTRA_SETTINGS = Columns(EntraSettings, "e")
# What a token's check reads of the active key sets (enrollment/entra_keys.py: find_key): not their documents.
ACTIVE_KEY_IDS = Columns(JwksSet, "j", fields=("id", "sha256", "key_ids"))


class EntraKeyAlertQuerySet(models.QuerySet):
    def open(self):
        return self.filter(resolved_at__isnull=True)


class EntraKeyAlert(models.Model):
    """A token signed with a key (`kid`) none of the active JWKS sets knows: Microsoft has probably
    rotated its keys and the administrators must import the new set. One open alert per kid."""

    kid = models.CharField(_("key id (kid)"), max_length=200)
    first_seen_at = models.DateTimeField(_("first seen at"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen at"), default=timezone.now)
    occurrences = models.PositiveIntegerField(_("occurrences"), default=1)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("resolved by"), null=True, blank=True,
                                    related_name="+",
                                    on_delete=models.SET_NULL)

    objects = EntraKeyAlertQuerySet.as_manager()

    class Meta:
        verbose_name = _("unknown Entra key alert")
        verbose_name_plural = _("unknown Entra key alerts")
        ordering = ["-last_seen_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["kid"], condition=models.Q(resolved_at__isnull=True),
                                    name="one_open_alert_per_kid"),
        ]

    def __str__(self):
        return _("Unknown Entra signing key %(kid)s") % {"kid": self.kid}

    @classmethod
    def raise_for(cls, kid):
        """Open (or bump) the alert for `kid`."""
        now = timezone.now()
        bump = {"last_seen_at": now, "occurrences": models.F("occurrences") + 1}
        if cls.objects.open().filter(kid=kid).update(**bump):
            return
        try:
            with transaction.atomic():
                cls.objects.create(kid=kid, first_seen_at=now, last_seen_at=now)
        except IntegrityError:
            # Another request opened it first (one open alert per kid): count this one there.
            cls.objects.open().filter(kid=kid).update(**bump)

    def resolve(self, by=None):
        if self.resolved_at is not None:
            raise InvalidTransition("resolved", "resolved")
        self.resolved_at = timezone.now()
        self.resolved_by = by if getattr(by, "is_authenticated", False) else None
        self.save(update_fields=["resolved_at", "resolved_by"])


class EntraIdentity(models.Model):
    """Ties a portal user to an Entra user object (tenant id + object id, the stable `tid`/`oid`
    claims), made by the user's first Entra enrollment."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"), related_name="entra_identities",
                             on_delete=models.CASCADE)
    tenant_id = models.CharField(_("tenant id"), max_length=64)
    object_id = models.CharField(_("object id"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("Entra ID link")
        verbose_name_plural = _("Entra ID links")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "object_id"], name="one_user_per_entra_object"),
            models.UniqueConstraint(fields=["user", "tenant_id"], name="one_entra_object_per_user_and_tenant"),
        ]

    def __str__(self):
        return f"{self.user} = {self.object_id} in {self.tenant_id}"


class SpentEntraTokenQuerySet(models.QuerySet):
    def expired(self, now=None):
        return self.filter(expires_at__lt=now or timezone.now())


class SpentEntraToken(models.Model):
    """An Entra access token that has enrolled a device.

    Windows presents one Entra token to GetPolicies and then to RST (MS-MDE2 3.3, 3.4), and retries a failed
    RST with it, so the token stays good for those; but it enrolls one device only. The row is written
    inside the enrollment's transaction (enrollment/wstep.py), so a refused or failed enrollment spends
    nothing, and the unique token id makes two concurrent RSTs with one token end in one enrollment.
    Once the token has expired its validation refuses it anyway, so the row is purged
    (enrollment.tasks.purge_spent_entra_tokens)."""

    token_id = models.CharField(
        _("token id"), max_length=80, unique=True,
        help_text=_("The token's jti or uti claim (jti:…, uti:…), else sha256:… of the whole token"),
    )
    expires_at = models.DateTimeField(_("expires at"),
        db_index=True, help_text=_("The token's exp plus the accepted clock skew: no longer accepted after this"),
    )
    device = models.ForeignKey(Device, verbose_name=_("device"), null=True, blank=True, related_name="+",
                               on_delete=models.SET_NULL)
    spent_at = models.DateTimeField(_("spent at"), default=timezone.now)

    objects = SpentEntraTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("spent Entra token")
        verbose_name_plural = _("spent Entra tokens")
        ordering = ["-spent_at", "-pk"]

    def __str__(self):
        return _("Entra token %(token)s") % {"token": self.token_id}
