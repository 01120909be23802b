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
    return errors
