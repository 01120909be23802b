"""Console pages of management: the enrolled device's page gets its commands, actions and settings
(the Device's own page, enrollment/admin.py, extended here and registered in its place: the same
URLs), and the list of every device's commands with their cancel page. Configuration groups:
admin_configuration.py; device actions: admin_actions.py."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from enrollment import admin as enrollment_admin
from enrollment.models import Device
from invitations.models import InvalidTransition
from mdmportal.search import SubquerySearchMixin

from . import commands, device_state
from .admin_actions import DeviceActionsMixin
from .admin_configuration import ConfigurationGroupAdmin  # noqa: F401  (registers the groups' pages)
from .models import DeviceCommand

DEVICE_PAGE_COMMANDS = 10  # commands per page of the device page's recent commands
DESTRUCTIVE_ACTIONS = {"wipe", "retire"}


def _result(command):
    text = command.result_data or command.note
    return Truncator(text).chars(80) if text else "—"


COMMAND_STATUS_BADGES = {
    DeviceCommand.Status.QUEUED: "progress", DeviceCommand.Status.SENT: "progress",
    DeviceCommand.Status.SUCCEEDED: "ok", DeviceCommand.Status.FAILED: "danger",
    DeviceCommand.Status.TIMED_OUT: "warning", DeviceCommand.Status.CANCELLED: "muted",
}


def badge_html(badges):
    return format_html_join(" ", '<span class="badge badge-{}" title="{}">{}</span>',
                            ((badge.kind, badge.title, badge.label) for badge in badges))


class CommandsPage:
    """One page of a device's commands, newest first: the page's rows and one more, which tells whether
    an older page exists (no COUNT of a history that grows with every check-in)."""

    def __init__(self, commands_newest_first, number):
        self.number = int(number) if str(number or "").isdigit() and int(number) > 0 else 1
        start = (self.number - 1) * DEVICE_PAGE_COMMANDS
        rows = list(commands_newest_first[start:start + DEVICE_PAGE_COMMANDS + 1])
        self.commands = rows[:DEVICE_PAGE_COMMANDS]
        self.has_next = len(rows) > DEVICE_PAGE_COMMANDS
        self.has_previous = self.number > 1
        self.next_page_number, self.previous_page_number = self.number + 1, self.number - 1


class DeviceAdmin(DeviceActionsMixin, enrollment_admin.DeviceAdmin):
    """The enrolled device's page and list, with what management adds: its state as badges (a wipe or
    a retire pending), the actions (destructive ones marked), the settings from configuration groups, the
    commands waiting for the device, and its recent commands newest first, a page at a time; the whole
    OMA-DM history is the command list filtered on the device (its own page)."""

    list_display = ["__str__", "user", "state", "model", "os_version", "enrolled_at", "last_seen_at"]

    def get_queryset(self, request):
        return device_state.with_pending_actions(super().get_queryset(request))

    @admin.display(description=_("state"))
    def state(self, device):
        return badge_html(device_state.badges(device))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        device = self.get_object(request, object_id)
        extra_context = {**(extra_context or {})}
        if device is not None:
            commands_of_device = DeviceCommand.objects.filter(device=device).select_related("queued_by")
            pending = list(commands_of_device.filter(status__in=device_state.PENDING_STATUSES).order_by("-pk")[:20])
            page = CommandsPage(commands_of_device.order_by("-pk"), request.GET.get("commands"))
            for command in [*pending, *page.commands]:
                command.badge = COMMAND_STATUS_BADGES[command.status]
                command.result_excerpt = _result(command)
            extra_context.update({
                "state_badges": device_state.badges(device), "pending_commands": pending, "commands_page": page,
                "destructive_actions": DESTRUCTIVE_ACTIONS,
                "may_cancel": request.user.has_perm("management.change_devicecommand"),
            })
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(Device)
admin.site.register(Device, DeviceAdmin)


@admin.action(description=_("Cancel the selected queued commands"), permissions=["change"])
def cancel_commands(modeladmin, request, queryset):
    cancelled = 0
    for command in queryset.filter(status=DeviceCommand.Status.QUEUED):
        try:
            commands.cancel(command, request.user, ip=request.META.get("REMOTE_ADDR"))
            cancelled += 1
        except InvalidTransition:
            pass  # sent to the device meanwhile
    modeladmin.message_user(request,
                            ngettext("Cancelled %(count)d command.", "Cancelled %(count)d commands.", cancelled)
                            % {"count": cancelled}, messages.SUCCESS)


@admin.register(DeviceCommand)
class DeviceCommandAdmin(SubquerySearchMixin, admin.ModelAdmin):
    """Every device's commands, filterable; commands are queued by actions, policies and inventory."""

    list_display = ["pk", "device", "verb", "target", "status", "status_code", "source", "created_at",
                    "completed_at"]
    ordering = ["-pk"]  # newest first, as on the device's page
    list_filter = ["status", "verb", "source"]
    search_fields = ["target", "device__name", "device__device_id", "source"]
    list_select_related = ["device", "queued_by"]
    # Commands outgrow the devices (every check-in adds some): one COUNT per page, never of the whole table.
    show_full_result_count = False
    actions = [cancel_commands]
    readonly_fields = ["device", "verb", "target", "format", "type", "data", "status", "status_code", "result_data",
                       "result_format", "note", "queued_by", "source", "created_at", "sent_at", "completed_at",
                       "expires_at", "attempts", "session", "msg_id", "cmd_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Commands are never edited; "change" stands for cancelling (the action and the cancel page).
        return super().has_change_permission(request, obj) if obj is None else False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view(self.cancel_view)
        return [path("<int:pk>/cancel/", view, name="management_devicecommand_cancel"), *super().get_urls()]

    def cancel_view(self, request, pk):
        if not super().has_change_permission(request):
            raise PermissionDenied
        command = get_object_or_404(DeviceCommand.objects.select_related("device"), pk=pk)
        device_page = reverse("admin:enrollment_device_change", args=[command.device_id])
        if request.method == "POST":
            try:
                commands.cancel(command, request.user, ip=request.META.get("REMOTE_ADDR"))
                self.message_user(request, _("Cancelled %(command)s.") % {"command": command}, messages.SUCCESS)
            except InvalidTransition:
                self.message_user(request, _("%(command)s was already %(status)s.") % {
                    "command": command, "status": command.get_status_display().lower()},
                                  messages.WARNING)
            return redirect(device_page)
        context = {**self.admin_site.each_context(request), "command": command, "device_page": device_page,
                   "title": _("Cancel a command"), "opts": self.model._meta}
        return TemplateResponse(request, "admin/management/devicecommand/cancel.html", context)
