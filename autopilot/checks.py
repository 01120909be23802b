"""Configuration mistakes of the Autopilot area, reported by `manage.py check`. The tenant is only
needed for offline profile files, so leaving both settings empty is not a mistake."""
import uuid

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.compatibility)
def check_tenant(app_configs, **kwargs):
    tenant_id, domain = settings.AUTOPILOT_TENANT_ID, settings.AUTOPILOT_TENANT_DOMAIN
    if not tenant_id and not domain:
        return []
    if not tenant_id or not domain:
        return [Error("Set both AUTOPILOT_TENANT_ID and AUTOPILOT_TENANT_DOMAIN, or neither",
                      hint="Offline Autopilot profile files need your Microsoft Entra tenant's id and domain.",
                      id="autopilot.E001")]
    try:
        uuid.UUID(tenant_id)
    except ValueError:
        return [Error(f"AUTOPILOT_TENANT_ID {tenant_id!r} is not a GUID",
                      hint="Copy the tenant id (a GUID, without braces) from the Microsoft Entra admin center.",
                      id="autopilot.E002")]
    return []
