"""Auditing of what administrators add, change and delete in the console, for every app's pages."""
from mdmportal.console import client_ip

from .models import AuditEvent


class AuditedAdminMixin:
    """Writes an AuditEvent next to Django's own LogEntry for every add, change and delete made in
    the console, so the audit log holds who, what, when and from where."""

    def _audit(self, request, action, obj, detail=None):
        AuditEvent.record(request.user, f"{obj._meta.model_name}.{action}", obj,
                          ip=client_ip(request), detail=detail)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._audit(request, "added", obj, {"change": message})
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self._audit(request, "changed", obj, {"change": message})
        return entry

    def log_deletions(self, request, queryset):
        # Called before the rows are deleted, so each object still has its pk and label.
        for obj in queryset:
            self._audit(request, "deleted", obj)
        return super().log_deletions(request, queryset)
