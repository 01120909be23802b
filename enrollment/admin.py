"""Console pages for enrolled devices: a filtered list and a read-only detail page. Devices are
created only by enrollment, never by hand."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from invitations.models import InvalidTransition

from . import commands
from .models import Device, DeviceCommand, RegistrationPin


def _result(command):
    text = command.result_data or command.note
    return Truncator(text).chars(80) if text else "—"


class DeviceCommandInline(admin.TabularInline):
    """The device's queue and history, newest first (issue 4 item 3)."""

    model = DeviceCommand
    verbose_name_plural = "Commands (queue and history)"
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
                           reverse("admin:enrollment_devicecommand_cancel", args=[command.pk]))

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("queued_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "user", "status", "method", "enrollment_type", "os_version", "model",
                    "enrolled_at", "last_seen_at"]
    list_filter = ["kind", "status", "method", "enrollment_type", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "device_id", "hw_dev_id", "user__email", "upn", "certificate_serial",
                     "certificate_thumbprint", "serial_number", "model"]
    list_select_related = ["user"]
    date_hierarchy = "enrolled_at"
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "user", "upn", "method", "enrollment_type", "enrolled_at",
                           "last_seen_at", "login_status", "unenrolled_at", "replaced_by"]}),
        ("Hardware and system", {"fields": ["device_id", "hw_dev_id", "manufacturer", "model", "serial_number",
                                            "os_version", "os_edition", "os_platform", "architecture", "total_ram_mb",
                                            "hardware_data_excerpt", "inventory_at"]}),
        ("Certificate", {"fields": ["certificate_serial", "certificate_thumbprint", "certificate_not_after",
                                    "certificate_renewed_at", "previous_certificate_serial", "revoked_at"]}),
        ("Enrollment request", {"fields": ["context_table"]}),
    ]

    inlines = [DeviceCommandInline]

    @admin.display(description="DeviceHardwareData")
    def hardware_data_excerpt(self, device):
        return Truncator(device.hardware_data).chars(60) if device.hardware_data else "—"

    @admin.display(description="Context items")
    def context_table(self, device):
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((n, v) for n, v in device.context_items))
        return format_html("<table>{}</table>", rows) if device.context_items else "—"

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only, but the detail page stays reachable for anyone who may view devices.
        return False


@admin.register(RegistrationPin)
class RegistrationPinAdmin(admin.ModelAdmin):
    """Who holds a registration PIN and what became of it. PINs are issued by the invitation flow and
    shown only to their user; the console never sees them."""

    list_display = ["user", "created_at", "expires_at", "consumed_at", "consumed_by", "revoked_at"]
    list_filter = [("consumed_at", admin.EmptyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email"]
    list_select_related = ["user", "consumed_by"]
    readonly_fields = ["user", "created_at", "created_by", "expires_at", "consumed_at", "consumed_by", "revoked_at"]
    exclude = ["pin_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
class DeviceCommandAdmin(admin.ModelAdmin):
    """Every device's commands, filterable; commands are queued by actions, policies and inventory."""

    list_display = ["pk", "device", "verb", "target", "status", "status_code", "source", "queued_by", "created_at",
                    "completed_at"]
    list_filter = ["status", "verb", "source"]
    search_fields = ["target", "device__name", "device__device_id", "source"]
    list_select_related = ["device", "queued_by"]
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
        return [path("<int:pk>/cancel/", view, name="enrollment_devicecommand_cancel"), *super().get_urls()]

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
        return TemplateResponse(request, "admin/enrollment/devicecommand/cancel.html", context)
