from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    verbose_name = "Devices and enrollment"
    name = "enrollment"

    def ready(self):
        from . import checks  # noqa: F401  (registers the CA system checks)
        from . import device_checks  # noqa: F401  (registers the enrollment settings checks)
        from . import entra_checks  # noqa: F401  (registers the Entra ID settings checks)
