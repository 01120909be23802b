"""Our PKI: the certificate authorities that sign the devices' certificates."""
from django.db import models
from django.utils.translation import gettext_lazy as _


class CertificateAuthority(models.Model):
    """A CA of our two-tier PKI (root and issuing), as Intune has it. The private key is stored
    encrypted with CA_KEY_PASSPHRASE from the environment and is never logged."""

    class Kind(models.TextChoices):
        ROOT = "root", _("Root CA")
        ISSUING = "issuing", _("Issuing CA")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    subject = models.CharField(_("subject"), max_length=255)
    certificate_pem = models.TextField(_("certificate pem"))
    encrypted_key_pem = models.TextField(_("encrypted key pem"), editable=False)
    serial = models.CharField(_("serial"), max_length=64)
    thumbprint = models.CharField(_("thumbprint"), max_length=40, unique=True,
                                  help_text=_("Uppercase hex SHA-1 of the DER certificate"))
    not_before = models.DateTimeField(_("not before"))
    not_after = models.DateTimeField(_("not after"))
    active = models.BooleanField(_("active"), default=True,
                                 help_text=_("The CA used for new certificates (one per kind)"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("certificate authority")
        verbose_name_plural = _("certificate authorities")
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(active=True), name="one_active_ca_per_kind"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.subject}"
