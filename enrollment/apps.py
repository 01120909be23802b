from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EnrollmentConfig(AppConfig):
    verbose_name = _("Devices and enrollment")
    name = "enrollment"

    def ready(self):
        from . import checks  # noqa: F401  (registers the enrollment and Entra ID settings checks)

        from accounts import registration
        from django.db.models import Exists, OuterRef

        from invitations import console_invitations
        from mdmportal import unavailable

        from . import device_views, pins
        from .models import Device

        # "Send invitation" tells which selected users already have an enrolled device.
        console_invitations.register_enrolled(
            lambda: Exists(Device.objects.enrolled().filter(user=OuterRef("pk"))))

        from invitations import user_summary

        from .admin_troubleshooting import user_summary_section

        # The user's console page shows their devices and links to their troubleshooting page.
        user_summary.register_section(user_summary_section)

        # The invitation email and the user's enrollment page issue and show registration PINs.
        registration.register_pins(pins)

        # Devices get the SOAP fault of their protocol while the database or Redis is down.
        unavailable.register_responder("enrollment", device_views.unavailable)
