"""Autopilot sections of the enrolled device's console page (enrollment/admin.py
register_device_inlines): its Enrollment Status Page progress and its essential apps."""
from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy

from .admin import USER_PHASE_FIELDS, items_table, later_users, progress
from .models import AppInstall, AutopilotEnrollment, ProvisioningItem


class SetupFormSet(BaseInlineFormSet):
    """The device's Autopilot enrollment (one at most) with its profile, record and status-page items, read in
    the same two queries whether the device has one or not: the page's query count must not depend on the
    device (tests/test_devices_admin_queries.py)."""

    def get_queryset(self):
        # Kept, so that the rows are read once however often the formset asks.
        if not hasattr(self, "_links"):
            links = list(super().get_queryset().select_related("profile", "record", "skip_user_page_command"))
            items = list(ProvisioningItem.objects.filter(enrollment__device=self.instance).order_by("pk"))
            for link in links:
                link.device = self.instance
                link.page_items = [item for item in items if item.enrollment_id == link.pk]
            self._links = links
        return self._links


class AutopilotSetupInline(admin.StackedInline):
    model = AutopilotEnrollment
    formset = SetupFormSet
    fk_name = "device"
    verbose_name = verbose_name_plural = "Autopilot setup (Enrollment Status Page)"
    fields = ["profile", "matched_by", "record", "applied_at", "esp_state", "setup_progress", "esp_started_at",
              "esp_deadline", "esp_finished_at", "esp_acknowledged_at", "esp_note", *USER_PHASE_FIELDS, "items"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="expected / done / failed")
    def setup_progress(self, link):
        return progress(link, link.page_items)

    @admin.display(description="items")
    def items(self, link):
        return items_table(link, link.page_items)

    @admin.display(description=gettext_lazy("later users"))
    def later_users(self, link):
        return later_users(link)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AppInstallInline(admin.TabularInline):
    model = AppInstall
    ordering = ["name"]  # the model's ["device", "name"] would join the device table for one device
    verbose_name_plural = "Essential apps"
    fields = ["name", "kind", "identifier", "state", "reported_status", "last_error", "polls", "attempts",
              "progress_at", "stalled_at", "updated_at", "completed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        # Each row's title is "<app> on <device>".
        return super().get_queryset(request).select_related("device")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
