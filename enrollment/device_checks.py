"""System checks for the device-side enrollment settings: mistakes show at start-up, not when a
device first calls."""
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error, Tags, register

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
