from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ManagementConfig(AppConfig):
    verbose_name = _("Device management")
    name = "management"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from rest_framework import serializers

        from enrollment import api, ppkg, reenrollment, signals
        from mdmportal import unavailable

        from . import actions, commands, device_state, device_views, pin_enrollments, reconcile
        from .models import ConfigurationGroup, GroupSetting

        # What a device's last reconciliation was computed from stops holding, in the change's transaction.
        for model in (ConfigurationGroup, GroupSetting):
            for signal in (post_save, post_delete):
                signal.connect(reconcile.configuration_changed, sender=model,
                               dispatch_uid=f"configuration-revision-{signal is post_save}-{model.__name__}")
        # A device whose enrollment ended (unenrolled, retired) gets nothing more of what is queued for it.
        signals.enrollment_ended.connect(commands.close_queue, dispatch_uid="close-queue-when-enrollment-ends")
        # Provisioning-package PIN enrollments carry the configuration groups their devices join.
        ppkg.register_option(pin_enrollments.OPTION)
        # A device that acknowledged a wipe can no longer be anyone's: a new enrollment may replace it.
        reenrollment.register_hardware_proof(actions.wiped)
        # OMA-DM clients get a plain 503 while the database or Redis is down.
        unavailable.register_responder("management", device_views.unavailable)
        # The devices' JSON says, as the console does, that a wipe or a retire waits for the device.
        api.register_device_field("wipe_pending", device_state.with_wipe_pending, serializers.BooleanField(
            read_only=True, help_text="A wipe is queued or sent and the device has not answered it yet."))
        api.register_device_field("retire_pending", device_state.with_retire_pending, serializers.BooleanField(
            read_only=True, help_text="An unenroll (retire) is queued or sent and the device has not answered it "
                                      "yet."))
