"""Configuration mistakes of the Autopilot area, reported by `manage.py check`."""
from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.compatibility, deploy=True)
def check_tenant(app_configs, **kwargs):
    if settings.AUTOPILOT_TENANT_ID and settings.AUTOPILOT_TENANT_DOMAIN:
        return []
    return [Warning("AUTOPILOT_TENANT_ID and AUTOPILOT_TENANT_DOMAIN are not both set",
                    hint="Offline Autopilot profile files name your Microsoft Entra tenant; they cannot be "
                         "downloaded until both are set.", id="autopilot.W001")]
