"""Configuration mistakes of the Autopilot area, reported by `manage.py check`."""
import os

from django.core.checks import Tags, Warning, register

RETIRED_VARIABLES = ["AUTOPILOT_TENANT_ID", "AUTOPILOT_TENANT_DOMAIN"]


@register(Tags.compatibility)
def check_retired_tenant_variables(app_configs, **kwargs):
    """The tenant of offline profile files was once read from the environment; it is now entered once, in
    the console's Entra ID settings, with Entra enrollment and the Microsoft Graph connection."""
    present = [name for name in RETIRED_VARIABLES if os.environ.get(name)]
    if not present:
        return []
    return [Warning(f"{' and '.join(present)} {'is' if len(present) == 1 else 'are'} no longer read",
                    hint="Enter the tenant's id and domain in the console: Enrollment > Entra ID.",
                    id="autopilot.W001")]
