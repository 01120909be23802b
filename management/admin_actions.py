"""Device actions in the console: buttons on the device page and actions on a selection of the device
list, each leading to a confirmation page that runs management.actions.run()."""
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from mdmportal.console import client_ip
from enrollment.models import Device

from . import actions, reconcile
from .console_forms import FORMS

MAX_SELECTION = 500


def _selection_action(name):
    action = actions.ACTIONS[name]

    def start(modeladmin, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True)[:MAX_SELECTION])
        return redirect(f"{reverse('admin:enrollment_device_action', args=[name])}?{urlencode({'ids': ids})}")

    start.__name__ = f"action_{name}"
    return admin.action(description=f"{action.label}…", permissions=[name])(start)


class DeviceActionsMixin:
    """Mixed into DeviceAdmin: the action pages, the selection actions and what the device page shows."""

    actions = [_selection_action(name) for name, a in actions.ACTIONS.items() if not a.single_device] + ["reapply"]
    change_form_template = "admin/management/device/change_form.html"

    def _may_run(self, request, name):
        return request.user.has_perm(actions.ACTIONS[name].permission)

    def has_sync_permission(self, request):
        return self._may_run(request, "sync")

    def has_reboot_permission(self, request):
        return self._may_run(request, "reboot")

    def has_wipe_permission(self, request):
        return self._may_run(request, "wipe")

    def has_retire_permission(self, request):
        return self._may_run(request, "retire")

    def has_release_permission(self, request):
        return self._may_run(request, "release")

    def has_reapply_permission(self, request):
        return request.user.has_perm("enrollment.change_device")

    @admin.action(description="Re-apply configuration (retry failed settings)", permissions=["reapply"])
    def reapply(self, request, queryset):
        queued = sum(reconcile.reconcile_device(device, retry_failed=True, actor=request.user).queued
                     for device in queryset.filter(status=Device.Status.ENROLLED))
        self.message_user(request, f"{queued} setting commands queued.")

    def get_urls(self):
        return [
            path("actions/<slug:name>/", self.admin_site.admin_view(self.action_view), name="enrollment_device_action"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        device = self.get_object(request, object_id)
        extra_context = {**(extra_context or {})}
        if device is not None:
            extra_context["device_actions"] = [
                a for a in actions.ACTIONS.values() if request.user.has_perm(a.permission)
                and not (a.name == "release" and device.is_released_for_reenrollment)
            ] if device.status == Device.Status.ENROLLED else []
            # Ordered here: the model's ordering starts with the device, a join for nothing on one device's page.
            extra_context["setting_states"] = (device.setting_states.select_related("command", "group")
                                               .order_by("loc_uri"))
        return super().change_view(request, object_id, form_url, extra_context)

    def action_view(self, request, name):
        action = actions.ACTIONS.get(name)
        if action is None:
            raise Http404("No such action")
        if not request.user.has_perm(action.permission):
            raise PermissionDenied
        ids = [pk for pk in request.GET.get("ids", "").split(",") if pk.isdigit()][:MAX_SELECTION]
        devices = list(Device.objects.filter(pk__in=ids).select_related("user"))
        if not devices:
            self.message_user(request, "Select at least one device.", messages.WARNING)
            return redirect("admin:enrollment_device_changelist")
        form_class = FORMS[name]
        form = form_class(request.POST if request.method == "POST" else None, devices=devices)
        if request.method == "POST" and form.is_valid():
            try:
                report = actions.run(name, devices, request.user, ip=client_ip(request), via="console",
                                     **form.cleaned_data)
            except actions.ActionRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                self._tell(request, action, report)
                if len(devices) == 1:
                    return redirect("admin:enrollment_device_change", devices[0].pk)
                return redirect("admin:enrollment_device_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{action.label}: {devices[0] if len(devices) == 1 else f'{len(devices)} devices'}",
            "action": action,
            "devices": devices,
            "form": form,
            "poll_schedule": actions.poll_schedule(),
            "wipe_limit": settings.ENROLLMENT_WIPE_LIMIT,
        }
        return TemplateResponse(request, "admin/management/device/action.html", context)

    def _tell(self, request, action, report):
        if report.released:
            self.message_user(request, f"{len(report.released)} device(s) released for re-enrollment: the next "
                                       "enrollment of each, by anyone, replaces it.")
        if report.retired:
            self.message_user(request, f"{len(report.retired)} device(s) retired now; their certificates are revoked.")
        if report.queued:
            devices = len({c.device_id for c in report.queued})
            follow = {
                "retire": " Each device is retired and its certificate revoked once it acknowledges the unenroll.",
                "rename": " The new name takes effect after the device restarts.",
            }.get(action.name, "")
            self.message_user(request, f"{action.label}: queued for {devices} device(s). Without push, a device "
                                       f"picks it up at its next poll ({actions.poll_schedule()}).{follow}")
        for device, reason in report.skipped:
            self.message_user(request, f"{device}: {'unchanged' if action.records_only else 'not sent'}. {reason}",
                              messages.WARNING)
