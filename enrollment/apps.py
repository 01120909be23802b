from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    verbose_name = "Devices and enrollment"
    name = "enrollment"

    def ready(self):
        from . import checks  # noqa: F401  (registers the enrollment and Entra ID settings checks)

        from accounts import registration
        from mdmportal import unavailable

        from . import device_views, pins

        # The invitation email and the user's enrollment page issue and show registration PINs.
        registration.register_pins(pins)

        # Devices get the SOAP fault of their protocol while the database or Redis is down.
        unavailable.register_responder("enrollment", device_views.unavailable)
