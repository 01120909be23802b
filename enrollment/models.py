"""Our PKI and the enrolled devices."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from invitations.models import InvalidTransition


class CertificateAuthority(models.Model):
    """A CA of our two-tier PKI (root and issuing), as Intune has it. The private key is stored
    encrypted with CA_KEY_PASSPHRASE from the environment and is never logged."""

    class Kind(models.TextChoices):
        ROOT = "root", "Root CA"
        ISSUING = "issuing", "Issuing CA"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    subject = models.CharField(max_length=255)
    certificate_pem = models.TextField()
    encrypted_key_pem = models.TextField(editable=False)
    serial = models.CharField(max_length=64)
    thumbprint = models.CharField(max_length=40, unique=True, help_text="Uppercase hex SHA-1 of the DER certificate")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    active = models.BooleanField(default=True, help_text="The CA used for new certificates (one per kind)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(active=True), name="one_active_ca_per_kind"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.subject}"


class DeviceQuerySet(models.QuerySet):
    def enrolled(self):
        """Devices whose current enrollment is live (not replaced, unenrolled or retired)."""
        return self.filter(status=Device.Status.ENROLLED)

    def same_hardware(self, device_id, hw_dev_id):
        """Live enrollments of this hardware: same DeviceID, or same HWDevID unless it is all zeros
        (VMs and some tools send zeros, which identify nothing; brief §5)."""
        match = models.Q(device_id__iexact=device_id)
        if hw_dev_id and hw_dev_id.strip("0"):
            match |= models.Q(hw_dev_id__iexact=hw_dev_id)
        return self.enrolled().filter(match)


class Device(models.Model):
    """One enrollment of a Windows PC or HoloLens 2 (a re-enrollment of the same hardware is a new
    row, and the old one becomes "replaced").

    APPAUTH secrets: OMA-DM digest (syncml:auth-md5) only ever needs H = b64(md5("name:secret")) and
    the current nonce, so we keep H for each direction and never the clear secrets handed to the
    device. H still lets someone who steals the database answer a digest challenge as that device,
    which is why the management channel relies on the client certificate first.
    """

    class Kind(models.TextChoices):
        PC = "pc", "PC"
        HOLOLENS = "hololens2", "HoloLens 2"

    class EnrollmentType(models.TextChoices):
        FULL = "Full", "User (Full)"
        DEVICE = "Device", "Device"

    class Method(models.TextChoices):
        ONPREMISE = "onpremise", "Password (on-premise)"
        FEDERATED = "federated", "Federated sign-in page"

    class Status(models.TextChoices):
        ENROLLED = "enrolled", "Enrolled"
        REPLACED = "replaced", "Replaced by a re-enrollment"
        UNENROLLED = "unenrolled", "Unenrolled"
        RETIRED = "retired", "Retired"

    # GetProductInfo SKU of "Windows Holographic for Business" (brief §8).
    HOLOGRAPHIC_EDITION = 136

    device_id = models.CharField("DeviceID", max_length=64, db_index=True)
    hw_dev_id = models.CharField("HWDevID", max_length=128, blank=True, db_index=True)
    name = models.CharField(max_length=255, blank=True)
    os_version = models.CharField("OS version", max_length=64, blank=True)
    os_edition = models.PositiveIntegerField("OS edition (SKU)", null=True, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PC)
    enrollment_type = models.CharField(max_length=8, choices=EnrollmentType.choices)
    method = models.CharField(max_length=16, choices=Method.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="devices", null=True, blank=True,
                             on_delete=models.SET_NULL)
    upn = models.CharField("UPN", max_length=254, blank=True, help_text="The name the device signed in with")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENROLLED, db_index=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    certificate_serial = models.CharField(max_length=64, unique=True)
    certificate_thumbprint = models.CharField(max_length=40, unique=True,
                                              help_text="Uppercase hex SHA-1 of the DER certificate")
    certificate_not_after = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    context_items = models.JSONField(
        default=list, blank=True,
        help_text="AdditionalContext of the enrollment request as [name, value] pairs, in order (MAC repeats)",
    )
    federated_token_id = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False,
        help_text="jti of the sign-in token spent by this enrollment (a token enrolls once)",
    )
    appsrv_digest = models.CharField(max_length=64, editable=False,
                                     help_text="b64(md5(DeviceID:secret)) to check the device's digest")
    appsrv_nonce = models.CharField(max_length=64, editable=False)
    client_digest = models.CharField(max_length=64, editable=False,
                                     help_text="b64(md5(provider:secret)) to authenticate to the device")
    client_nonce = models.CharField(max_length=64, editable=False)
    enrolled_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        ordering = ["-enrolled_at", "-pk"]
        indexes = [models.Index(fields=["user", "status"])]

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
