"""Console pages for enrolled devices: a filtered list and a read-only detail page. Devices are
created only by enrollment, never by hand."""
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .admin_actions import DeviceActionsMixin
from .admin_configuration import ConfigurationGroupAdmin  # noqa: F401  (registers the groups' pages)
from .models import Device, RegistrationPin


@admin.register(Device)
class DeviceAdmin(DeviceActionsMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "user", "status", "method", "enrollment_type", "os_version", "enrolled_at",
                    "last_seen_at"]
    list_filter = ["kind", "status", "method", "enrollment_type", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "device_id", "hw_dev_id", "user__email", "upn", "certificate_serial",
                     "certificate_thumbprint"]
    list_select_related = ["user"]
    date_hierarchy = "enrolled_at"
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "user", "upn", "method", "enrollment_type", "enrolled_at",
                           "last_seen_at", "replaced_by"]}),
        ("Hardware and system", {"fields": ["device_id", "hw_dev_id", "os_version", "os_edition"]}),
        ("Certificate", {"fields": ["certificate_serial", "certificate_thumbprint", "certificate_not_after",
                                    "revoked_at"]}),
        ("Enrollment request", {"fields": ["context_table"]}),
    ]

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
