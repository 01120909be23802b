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
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

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
    return admin.action(description=format_lazy("{}…", action.label), permissions=[name])(start)


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

    @admin.action(description=_("Re-apply configuration (retry failed settings)"), permissions=["reapply"])
    def reapply(self, request, queryset):
        queued = sum(reconcile.reconcile_device(device, retry_failed=True, actor=request.user).queued
                     for device in queryset.filter(status=Device.Status.ENROLLED))
        self.message_user(request, ngettext("%(count)d setting command queued.", "%(count)d setting commands queued.",
                                            queued) % {"count": queued})

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
            self.message_user(request, _("Select at least one device."), messages.WARNING)
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
            "title": _("%(action)s: %(devices)s") % {
                "action": action.label,
                "devices": devices[0] if len(devices) == 1 else ngettext("%(count)d device", "%(count)d devices",
                                                                         len(devices)) % {"count": len(devices)}},
            "action": action,
            "devices": devices,
            "form": form,
            "poll_schedule": actions.poll_schedule(),
            "wipe_limit": settings.ENROLLMENT_WIPE_LIMIT,
        }
        return TemplateResponse(request, "admin/management/device/action.html", context)

    def _tell(self, request, action, report):
        if report.released:
            count = len(report.released)
            self.message_user(request, ngettext(
                "%(count)d device released for re-enrollment: its next enrollment, by anyone, replaces it.",
                "%(count)d devices released for re-enrollment: the next enrollment of each, by anyone, replaces it.",
                count) % {"count": count})
        if report.retired:
            count = len(report.retired)
            self.message_user(request, ngettext("%(count)d device retired now; its certificate is revoked.",
                                                "%(count)d devices retired now; their certificates are revoked.",
                                                count) % {"count": count})
        if report.queued:
            devices = len({c.device_id for c in report.queued})
            follow = {
                "retire": _("Each device is retired and its certificate revoked once it acknowledges the unenroll."),
                "rename": _("The new name takes effect after the device restarts."),
            }.get(action.name)
            message = ngettext(
                "%(action)s: queued for %(count)d device. Without push, a device picks it up at its next poll "
                "(%(schedule)s).",
                "%(action)s: queued for %(count)d devices. Without push, a device picks it up at its next poll "
                "(%(schedule)s).", devices) % {"action": action.label, "count": devices,
                                              "schedule": actions.poll_schedule()}
            self.message_user(request, f"{message} {follow}" if follow else message)
        for device, reason in report.skipped:
            outcome = _("unchanged") if action.records_only else _("not sent")
            self.message_user(request, _("%(device)s: %(outcome)s. %(reason)s") % {
                "device": device, "outcome": outcome, "reason": reason},
                              messages.WARNING)
