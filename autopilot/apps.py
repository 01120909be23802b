from django.apps import AppConfig


class AutopilotConfig(AppConfig):
    verbose_name = "Windows Autopilot"
    name = "autopilot"

    def ready(self):
        from enrollment import reenrollment

        from . import checks  # noqa: F401  (registers the system checks)
        from . import matching

        # An Autopilot record matched by hardware hash proves a re-enrollment comes from the same PC.
        reenrollment.register_hardware_proof(matching.hardware_hash_proof)
