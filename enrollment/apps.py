from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    verbose_name = "Devices and enrollment"
    name = "enrollment"

    def ready(self):
        from . import checks  # noqa: F401  (registers the CA system checks)
        from . import device_checks  # noqa: F401  (registers the enrollment settings checks)
        from . import entra_checks  # noqa: F401  (registers the Entra ID settings checks)
        from django.db.models.signals import post_save

        from . import reconcile

        post_save.connect(reconcile.device_saved, sender="enrollment.Device", dispatch_uid="reconcile-new-device")
