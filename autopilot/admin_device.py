"""Autopilot sections of the enrolled device's console page (enrollment/admin.py DeviceAdmin): its
Enrollment Status Page progress and its essential apps."""
from django.contrib import admin

from .admin import USER_PHASE_FIELDS, items_table, progress
from .models import AppInstall, AutopilotEnrollment


class AutopilotSetupInline(admin.StackedInline):
    model = AutopilotEnrollment
    fk_name = "device"
    verbose_name = verbose_name_plural = "Autopilot setup (Enrollment Status Page)"
    fields = ["profile", "matched_by", "record", "applied_at", "esp_state", "setup_progress", "esp_started_at",
              "esp_deadline", "esp_finished_at", "esp_acknowledged_at", "esp_note", *USER_PHASE_FIELDS, "items"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="expected / done / failed")
    def setup_progress(self, link):
        return progress(link)

    @admin.display(description="items")
    def items(self, link):
        return items_table(link)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AppInstallInline(admin.TabularInline):
    model = AppInstall
    verbose_name_plural = "Essential apps"
    fields = ["name", "kind", "identifier", "state", "reported_status", "last_error", "polls", "updated_at",
              "completed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
