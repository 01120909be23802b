"""Our PKI: the certificate authorities that sign the devices' certificates."""
from django.db import models


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
