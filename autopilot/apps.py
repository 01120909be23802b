from django.apps import AppConfig


class AutopilotConfig(AppConfig):
    verbose_name = "Windows Autopilot"
    name = "autopilot"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
