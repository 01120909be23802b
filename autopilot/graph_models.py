"""The optional Microsoft Graph connector: its settings, and what Microsoft's Autopilot
service said about each device and profile we pushed. Imported by models.py so Django finds them.

The domain work (token, requests, push, poll, pull) lives in autopilot/graph.py and graph_sync.py.
"""
import uuid
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.functional import cached_property

from enrollment.models import EntraSettings
from pki.passphrase import Outcome
from invitations.models import InvalidTransition
from mdmportal import outbound

from . import sealing
from .models import AutopilotDevice, Profile

DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com"
DEFAULT_TOKEN_BASE_URL = "https://login.microsoftonline.com"
TENANT_MISSING = _("Enter your tenant id in the Entra ID settings (Enrollment > Entra ID) first.")


def _is_guid(value):
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def base_url_error(url):
    """Why `url` cannot be a Graph or token base URL, or None. Credentials and tokens only travel over
    https; plain http is accepted on the loopback, for a local test double."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.username or parts.password:
        return _("Give only the scheme, host and (optionally) a path, without query, fragment or user name.")
    if outbound.is_https(url, allow_loopback_http=True):
        return None
    return _("Use an https:// address (plain http:// is only accepted on this machine, for testing).")


class GraphConnector(models.Model):
    """The connector's settings: one row. Off by default; the client secret is stored sealed
    (autopilot/sealing.py) and never shown again after it is saved."""

    enabled = models.BooleanField(_("enabled"),
        default=False, help_text=_("Push imported devices and profiles to Microsoft's Autopilot service and pull "
                                 "their status back."))
    client_id = models.CharField(
        _("application (client) id"), max_length=36, blank=True,
        help_text=_("The app registration's id. It needs the DeviceManagementServiceConfig.ReadWrite.All "
                  "application permission, and Group.ReadWrite.All to assign profiles by group tag."))
    sealed_client_secret = models.TextField(_("sealed client secret"), blank=True, editable=False)
    client_secret_set_at = models.DateTimeField(_("client secret saved"), null=True, blank=True, editable=False)
    graph_base_url = models.URLField(
        _("Graph base URL"), default=DEFAULT_GRAPH_BASE_URL,
        help_text=_("https://graph.microsoft.com, or your national cloud's (https://graph.microsoft.us...)."))
    token_base_url = models.URLField(
        _("token endpoint base"), default=DEFAULT_TOKEN_BASE_URL,
        help_text=_("https://login.microsoftonline.com, or your national cloud's sign-in host."))
    last_sync_at = models.DateTimeField(_("last synchronisation"), null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True, editable=False,
                                  help_text=_("Why the last synchronisation stopped, if it did"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("Microsoft Graph connector")
        verbose_name_plural = _("Microsoft Graph connector")

    def __str__(self):
        return str(_("Microsoft Graph connector"))

    SINGLETON_PK = 1

    @classmethod
    def get(cls):
        connector, _created = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return connector

    @property
    def has_client_secret(self):
        return bool(self.sealed_client_secret)

    def set_client_secret(self, secret):
        self.sealed_client_secret = sealing.seal(secret)
        self.client_secret_set_at = timezone.now()

    def client_secret(self):
        """The plain secret, for the token request only; raises sealing.SealError."""
        return sealing.unseal(self.sealed_client_secret)

    @cached_property
    def tenant(self):
        """The organisation's Microsoft Entra tenant, entered once in the Entra ID settings
        (enrollment.EntraSettings): its id, else its domain, else ""."""
        entra = EntraSettings.get()
        return entra.tenant_id or entra.tenant_domain

    @property
    def token_url(self):
        """OAuth 2.0 client credentials grant (RFC 6749 §4.4) at the Microsoft identity platform's v2.0
        endpoint for the tenant."""
        return f"{self.token_base_url.rstrip('/')}/{self.tenant}/oauth2/v2.0/token"

    @property
    def scope(self):
        # Application permissions are requested as "<resource>/.default".
        return f"{self.graph_base_url.rstrip('/')}/.default"

    def clean(self):
        errors = {}
        self.client_id = self.client_id.strip()
        if self.client_id and not _is_guid(self.client_id):
            errors["client_id"] = _("The application (client) id is a GUID: copy it from the app registration.")
        for field in ("graph_base_url", "token_base_url"):
            problem = base_url_error(getattr(self, field))
            if problem:
                errors[field] = problem
        if self.enabled:
            missing = [str(label) for label, value in ((_("the client id"), self.client_id),
                                                       (_("the client secret"),
                                                        self.sealed_client_secret)) if not value]
            if missing:
                errors["enabled"] = _("Give %(missing)s before turning the connector on.") % {"missing": ", ".join(missing)}
            elif not self.tenant:
                errors["enabled"] = TENANT_MISSING
        if errors:
            raise ValidationError(errors)

    def record_sync(self, *, error=""):
        self.last_error = error
        if not error:
            self.last_sync_at = timezone.now()
        self.save(update_fields=["last_error", "last_sync_at"])


def reseal_client_secrets(old, new, *, dry_run):
    """The connector's client secret sealed again under passphrase `new` when `old` opens it, for
    `manage.py rotate_ca_passphrase` (pki.passphrase.register_sealed_secrets; runs inside its
    transaction). The plain secret never leaves this function."""
    outcome = Outcome()
    for connector in GraphConnector.objects.select_for_update().exclude(sealed_client_secret=""):
        try:
            sealing.unseal(connector.sealed_client_secret, passphrase=new)
        except sealing.SealError:
            pass
        else:
            outcome.already += 1
            continue
        try:
            secret = sealing.unseal(connector.sealed_client_secret, passphrase=old)
        except sealing.SealError:
            outcome.failed.append("the Microsoft Graph connector's client secret")
            continue
        outcome.rotated += 1
        if not dry_run:
            # client_secret_set_at stays: the secret itself did not change.
            connector.sealed_client_secret = sealing.seal(secret, passphrase=new)
            connector.save(update_fields=["sealed_client_secret"])
    return outcome


class GraphDeviceSync(models.Model):
    """One imported device as Microsoft's Autopilot service knows it: its import (pushed, then polled
    until Microsoft's Device Directory Service answers) and its registration (pulled)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Import pending at Microsoft")
        REGISTERED = "registered", _("Registered with Microsoft")
        REFUSED = "refused", _("Refused by Microsoft")

    device = models.OneToOneField(AutopilotDevice, verbose_name=_("device"), related_name="graph_sync",
                                  on_delete=models.CASCADE)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, db_index=True)
    imported_id = models.CharField(_("import record id"), max_length=64, blank=True,
                                   help_text=_("The importedWindowsAutopilotDeviceIdentity, while the import runs"))
    error_code = models.IntegerField(_("error code"), null=True, blank=True,
                                     help_text=_("deviceErrorCode, or the HTTP status"))
    error_name = models.CharField(_("error name"), max_length=128, blank=True,
                                  help_text=_("deviceErrorName, or Graph's error code"))
    error_message = models.TextField(_("error message"), blank=True)
    pushed_at = models.DateTimeField(_("pushed at"), null=True, blank=True)
    checked_at = models.DateTimeField(_("import last checked"), null=True, blank=True)
    identity_id = models.CharField(_("Autopilot device id"), max_length=64, blank=True,
                                   help_text=_("The windowsAutopilotDeviceIdentity (its ZTD id)"))
    profile_assignment_status = models.CharField(_("profile assignment status"), max_length=40, blank=True)
    enrollment_state = models.CharField(_("enrollment state"), max_length=40, blank=True)
    last_contacted_at = models.DateTimeField(_("last contacted at"), null=True, blank=True)
    pulled_at = models.DateTimeField(_("status last pulled"), null=True, blank=True)

    class Meta:
        verbose_name = _("Autopilot service status")
        verbose_name_plural = _("Autopilot service status")

    def __str__(self):
        return f"{self.device}: {self.get_status_display()}"

    def mark_pushed(self, imported_id):
        """Sent (again): Microsoft answered with the import record to poll."""
        if self.status == self.Status.REGISTERED:
            raise InvalidTransition(self.status, self.Status.PENDING)
        self.status, self.imported_id, self.pushed_at = self.Status.PENDING, imported_id, timezone.now()
        self.error_code, self.error_name, self.error_message = None, "", ""
        self.save()

    def refuse(self, *, code=None, name="", message=""):
        if self.status == self.Status.REGISTERED:
            raise InvalidTransition(self.status, self.Status.REFUSED)
        self.status, self.imported_id = self.Status.REFUSED, ""
        self.error_code, self.error_name, self.error_message = code, name[:128], message
        self.pushed_at = self.pushed_at or timezone.now()
        self.checked_at = timezone.now()
        self.save()

    def mark_registered(self):
        if self.status == self.Status.REFUSED:
            raise InvalidTransition(self.status, self.Status.REGISTERED)
        self.status, self.imported_id, self.checked_at = self.Status.REGISTERED, "", timezone.now()
        self.save(update_fields=["status", "imported_id", "checked_at"])

    def record_identity(self, *, identity_id, profile_assignment_status, enrollment_state, last_contacted_at):
        """Microsoft lists the device among its Autopilot devices: it is registered, whatever an import
        said before (a device refused as already registered is registered all the same)."""
        if self.status != self.Status.REGISTERED:
            self.status, self.imported_id = self.Status.REGISTERED, ""
            self.error_code, self.error_name, self.error_message = None, "", ""
        self.identity_id = identity_id
        self.profile_assignment_status, self.enrollment_state = profile_assignment_status, enrollment_state
        self.last_contacted_at, self.pulled_at = last_contacted_at, timezone.now()
        self.save()

    def still_pending(self):
        self.checked_at = timezone.now()
        self.save(update_fields=["checked_at"])


class GraphProfileSync(models.Model):
    """A profile as pushed to Graph: its windowsAutopilotDeploymentProfile id, and a digest of what was
    sent so unchanged profiles are not sent again."""

    profile = models.OneToOneField(Profile, verbose_name=_("profile"), related_name="graph_sync",
                                   on_delete=models.CASCADE)
    graph_id = models.CharField(_("deployment profile id"), max_length=64, blank=True)
    pushed_digest = models.CharField(_("pushed digest"), max_length=64, blank=True, editable=False)
    pushed_at = models.DateTimeField(_("pushed at"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True)

    class Meta:
        verbose_name = _("profile in the Autopilot service")
        verbose_name_plural = _("profile in the Autopilot services")

    def __str__(self):
        return f"{self.profile} → {self.graph_id or _('not pushed')}"


class GraphTagGroup(models.Model):
    """The dynamic Microsoft Entra device group made for a group tag: Autopilot profiles are assigned to
    groups, and Intune itself targets a group tag with such a group."""

    tag = models.CharField(_("tag"), max_length=128, unique=True)
    group_id = models.CharField(_("group id"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("group tag's Entra group")
        verbose_name_plural = _("group tag's Entra groups")

    def __str__(self):
        return f"{self.tag} → {self.group_id}"
