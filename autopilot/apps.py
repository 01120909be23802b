from django.apps import AppConfig


class AutopilotConfig(AppConfig):
    verbose_name = "Windows Autopilot"
    name = "autopilot"

    def ready(self):
        from enrollment import reenrollment
        from invitations import dashboard

        from . import checks  # noqa: F401  (registers the system checks)
        from . import matching
        from .dashboard import stalled_installs_card

        # An Autopilot record matched by hardware hash proves a re-enrollment comes from the same PC.
        reenrollment.register_hardware_proof(matching.hardware_hash_proof)
        # Stalled app installs need someone's attention: a figure on the console's dashboard.
        dashboard.register_card(stalled_installs_card)
