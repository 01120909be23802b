"""System checks for Entra ID enrollment: a switched-on Entra trust that cannot accept any token
shows at start-up, not when the first Entra device calls."""
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError


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
