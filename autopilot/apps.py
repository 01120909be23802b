from django.apps import AppConfig


class AutopilotConfig(AppConfig):
    verbose_name = "Windows Autopilot"
    name = "autopilot"
