"""Console pages of management: the enrolled device's page gets its commands, actions and settings
(the Device's own page, enrollment/admin.py, extended here and registered in its place: the same
URLs), and the list of every device's commands with their cancel page. Configuration groups:
admin_configuration.py; device actions: admin_actions.py."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from enrollment import admin as enrollment_admin
from enrollment.models import Device
from invitations.models import InvalidTransition
from mdmportal.search import SubquerySearchMixin

from . import commands
from .admin_actions import DeviceActionsMixin
from .admin_configuration import ConfigurationGroupAdmin  # noqa: F401  (registers the groups' pages)
from .models import DeviceCommand

DEVICE_PAGE_COMMANDS = 50


def _result(command):
    text = command.result_data or command.note
    return Truncator(text).chars(80) if text else "—"


class LatestCommandsFormSet(BaseInlineFormSet):
    """Only the newest DEVICE_PAGE_COMMANDS commands: a device's history grows with every check-in, and
    the page links to the full list (templates/admin/management/device/change_form.html)."""

    def get_queryset(self):
        # Kept, so that the rows are read once however often the formset asks.
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:DEVICE_PAGE_COMMANDS]
        return self._latest


class DeviceCommandInline(admin.TabularInline):
    """The device's queue and history, newest first."""

    model = DeviceCommand
    formset = LatestCommandsFormSet
    verbose_name_plural = f"Commands (queue and latest history, newest {DEVICE_PAGE_COMMANDS})"
    fields = ["sequence", "verb", "target", "status", "status_code", "result", "source", "queued_by", "created_at",
              "sent_at", "completed_at", "expires_at", "cancel_link"]
    readonly_fields = fields
    ordering = ["-pk"]
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="#")
    def sequence(self, command):
        return command.pk

    @admin.display(description="Result")
    def result(self, command):
        return _result(command)

    @admin.display(description="")
    def cancel_link(self, command):
        if command.status != DeviceCommand.Status.QUEUED:
            return ""
        return format_html('<a class="button" href="{}">Cancel</a>',
                           reverse("admin:management_devicecommand_cancel", args=[command.pk]))

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("queued_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeviceAdmin(DeviceActionsMixin, enrollment_admin.DeviceAdmin):
    """The enrolled device's page and list, with what management adds: the actions, the settings from
    configuration groups and the command queue (after the sections of apps above, Autopilot)."""

    inlines = [DeviceCommandInline]


admin.site.unregister(Device)
admin.site.register(Device, DeviceAdmin)


@admin.action(description="Cancel the selected queued commands", permissions=["change"])
def cancel_commands(modeladmin, request, queryset):
    cancelled = 0
    for command in queryset.filter(status=DeviceCommand.Status.QUEUED):
        try:
            commands.cancel(command, request.user, ip=request.META.get("REMOTE_ADDR"))
            cancelled += 1
        except InvalidTransition:
            pass  # sent to the device meanwhile
    modeladmin.message_user(request, f"Cancelled {cancelled} command(s).", messages.SUCCESS)


@admin.register(DeviceCommand)
class DeviceCommandAdmin(SubquerySearchMixin, admin.ModelAdmin):
    """Every device's commands, filterable; commands are queued by actions, policies and inventory."""

    list_display = ["pk", "device", "verb", "target", "status", "status_code", "source", "queued_by", "created_at",
                    "completed_at"]
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
                self.message_user(request, f"Cancelled {command}.", messages.SUCCESS)
            except InvalidTransition:
                self.message_user(request, f"{command} was already {command.get_status_display().lower()}.",
                                  messages.WARNING)
            return redirect(device_page)
        context = {**self.admin_site.each_context(request), "command": command, "device_page": device_page,
                   "title": "Cancel a command", "opts": self.model._meta}
        return TemplateResponse(request, "admin/management/devicecommand/cancel.html", context)
