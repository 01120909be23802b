"""The audit of what administrators add, change and delete, in the console or over the JSON API, for
every app: one function writes the row, and two thin adapters call it — one for the console's
ModelAdmins, one for the API's viewsets — so both doors leave the same trace (OWASP Logging Cheat
Sheet: who, what, when, from where, through which interface)."""
from django.apps import apps
from django.db import transaction
from django.utils.text import capfirst

from mdmportal.console import client_ip

from .models import AuditEvent


def record_change(request, verb, obj, *, via, detail=None):
    """Audit `verb` ("added", "changed", "deleted", "membership_changed"...) done to `obj` by the person
    making `request`: the action is named `<model>.<verb>` after the object's model, the address is
    the request's, `via` names the door ("console" or "api") and `detail` says what changed."""
    return AuditEvent.record(request.user, f"{obj._meta.model_name}.{verb}", obj, ip=client_ip(request),
                             detail={"via": via, **(detail or {})})


class AuditedAdminMixin:
    """For a console ModelAdmin: an audit row next to Django's own LogEntry for every add, change and
    delete, with Django's change message (which fields changed) as the detail."""

    def audit_change(self, request, verb, obj, detail=None):
        return record_change(request, verb, obj, via="console", detail=detail)

    def get_deleted_objects(self, objs, request):
        """Django's summary of what a delete takes with it, without the rows of many-to-many link tables
        Django makes itself ("Usergroup-user relationship: UserGroup_members object (19)"): they name
        no object of ours, only the link, which the related object's own line already shows."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        links = [model._meta for model in apps.get_models(include_auto_created=True) if model._meta.auto_created]
        prefixes = tuple(f"{capfirst(opts.verbose_name)}: " for opts in links)
        plurals = {str(opts.verbose_name_plural) for opts in links}

        def kept(items):
            result = []
            for item in items:
                if isinstance(item, list):
                    result.append(kept(item))
                elif not str(item).startswith(prefixes):
                    result.append(item)
            return [item for item in result if item != []]

        counts = {name: count for name, count in counts.items() if str(name) not in plurals}
        return kept(deleted), counts, perms_needed, protected

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self.audit_change(request, "added", obj, {"change": message})
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self.audit_change(request, "changed", obj, {"change": message})
        return entry

    def log_deletions(self, request, queryset):
        # Called before the rows are deleted, so each object still has its pk and label.
        for obj in queryset:
            self.audit_change(request, "deleted", obj)
        return super().log_deletions(request, queryset)


def fields_set(serializer):
    """The names of the serializer's writable fields the call gave a value: only fields the API knows
    and lets a caller write, never whatever other keys the caller sent."""
    given = serializer.initial_data
    return sorted(name for name, field in serializer.fields.items() if not field.read_only and name in given)


class AuditedViewSetMixin:
    """For a DRF viewset: each create, update and delete saved together with its audit row, the
    fields the call set as the detail."""

    def audit_change(self, verb, obj, detail=None):
        return record_change(self.request, verb, obj, via="api", detail=detail)

    def perform_create(self, serializer):
        with transaction.atomic():
            self.audit_change("added", serializer.save(), {"fields": fields_set(serializer)})

    def perform_update(self, serializer):
        with transaction.atomic():
            self.audit_change("changed", serializer.save(), {"fields": fields_set(serializer)})

    def perform_destroy(self, instance):
        with transaction.atomic():
            self.audit_change("deleted", instance)
            instance.delete()
