"""System checks of the enrollment app: mistakes in the device-side enrollment settings show at
start-up, not when a device first calls, and a switched-on Entra trust that cannot accept any token
shows at start-up, not when the first Entra device calls."""
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

AUTH_POLICIES = ("onpremise", "federated")


@register(Tags.compatibility)
def check_enrollment_settings(app_configs, **kwargs):
    errors = []
    if settings.ENROLLMENT_AUTH_POLICY not in AUTH_POLICIES:
        errors.append(Error(f"ENROLLMENT_AUTH_POLICY is {settings.ENROLLMENT_AUTH_POLICY!r}",
                            hint=f"Use one of {', '.join(AUTH_POLICIES)}.", id="enrollment.E101"))
    try:
        version_ok = Decimal(settings.ENROLLMENT_MAX_VERSION) >= 1
    except (InvalidOperation, TypeError):
        version_ok = False
    if not version_ok:
        errors.append(Error(f"ENROLLMENT_MAX_VERSION is {settings.ENROLLMENT_MAX_VERSION!r}",
                            hint='Use a version such as "4.0".', id="enrollment.E102"))
    if not settings.ENROLLMENT_PROVIDER_ID or not settings.ENROLLMENT_PROVIDER_ID.isprintable():
        errors.append(Error("ENROLLMENT_PROVIDER_ID is empty or not printable", id="enrollment.E103"))
    if not settings.ENROLLMENT_MANAGEMENT_PATH.startswith("/"):
        errors.append(Error("ENROLLMENT_MANAGEMENT_PATH must start with /", id="enrollment.E104"))
    errors.extend(check_renewal_schedule())
    return errors


def check_renewal_schedule():
    """WSTEP/Renew (CertificateStore CSP): Windows refuses a schedule outside 1 <= RetryInterval <= RenewPeriod
    <= 1000 days, and a RenewPeriod as long as the certificate would make every device renew at once."""
    period, retry = settings.ENROLLMENT_RENEW_PERIOD_DAYS, settings.ENROLLMENT_RENEW_RETRY_DAYS
    errors = []
    if not 1 <= retry <= period <= 1000:
        errors.append(Error(
            f"ENROLLMENT_RENEW_RETRY_DAYS ({retry}) and ENROLLMENT_RENEW_PERIOD_DAYS ({period}) are not a valid "
            "renewal schedule", hint="Windows needs 1 <= retry <= period <= 1000 days, e.g. 4 and 60.",
            id="enrollment.E107"))
    if period >= settings.DEVICE_CERT_VALIDITY_DAYS:
        errors.append(Error(
            f"ENROLLMENT_RENEW_PERIOD_DAYS ({period}) is not shorter than DEVICE_CERT_VALIDITY_DAYS "
            f"({settings.DEVICE_CERT_VALIDITY_DAYS}): devices would renew as soon as they enroll.",
            hint="Keep the renewal period well below the certificate validity (60 of 365 days by default).",
            id="enrollment.E108"))
    return errors


@register(Tags.security)
def check_entra_settings(app_configs, **kwargs):
    from .models import EntraSettings, JwksSet, mirror_url_error

    errors = []
    if settings.ENROLLMENT_ENTRA_TERMS_SECONDS < 60:
        errors.append(Error("ENROLLMENT_ENTRA_TERMS_SECONDS is under a minute: accepted terms would expire "
                            "before the enrollment that follows them.", id="enrollment.E201"))
    try:
        entra = EntraSettings.objects.filter(pk=1, enabled=True).first()
        has_keys = JwksSet.objects.active().exists()
        mirror_url = EntraSettings.objects.filter(pk=1).values_list("jwks_mirror_url", flat=True).first()
    except DatabaseError:
        return errors  # no database or not migrated yet
    if mirror_url and mirror_url_error(mirror_url):
        errors.append(Warning(
            f"The JWKS mirror URL {mirror_url} is not https: its keys are no longer fetched.",
            hint="Serve the mirror over https and save its address on the Entra ID settings page.",
            id="enrollment.W202",
        ))
    if entra is not None and not (entra.tenant_ids and entra.audiences and has_keys):
        errors.append(Warning(
            "Entra ID enrollment is switched on but lacks a tenant id, an audience or an active signing key set: "
            "Entra devices are refused.",
            hint="Complete the Entra ID settings page of the console (import Microsoft's JWKS).",
            id="enrollment.W201",
        ))
    return errors
