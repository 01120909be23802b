from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AutopilotConfig(AppConfig):
    verbose_name = _("Windows Autopilot")
    name = "autopilot"

    def ready(self):
        from enrollment import admin as enrollment_admin
        from enrollment import reenrollment, wstep
        from management import inventory, omadm
        from pki import passphrase

        from . import checks  # noqa: F401  (registers the system checks)
        from . import admin_device, graph_models, matching, status_page

        # An Autopilot record matched by hardware hash proves a re-enrollment comes from the same PC.
        reenrollment.register_hardware_proof(matching.hardware_hash_proof)
        # The Graph client secret is sealed with CA_KEY_PASSPHRASE: `rotate_ca_passphrase` re-seals it.
        passphrase.register_sealed_secrets(graph_models.reseal_client_secrets)
        # Recognising a device: by the ZTD id or offline correlator of its enrollment request, else by
        # the serial number and hardware hash read at the start of its first OMA-DM session.
        wstep.register_enrolled(matching.link_enrolled_device)
        inventory.register_reader(matching.wants_hardware, matching.recognise)
        # At the start of each OMA-DM session of a device with an Autopilot setup: app installs and the
        # Enrollment Status Page move on. The condition joins the device's read of the first message.
        omadm.register_session_start("has_autopilot_setup", status_page.has_setup, status_page.checked_in)
        # The device's console page shows its Enrollment Status Page progress and essential apps.
        enrollment_admin.register_device_inlines(admin_device.AutopilotSetupInline, admin_device.AppInstallInline)
