"""The administrators' console: Django's admin site, titled, with a dashboard and the getting-started
wizard, plus the helpers every console page shares (who is a full administrator, where a request
comes from, auditing of the admin's own add/change/delete)."""
from django.contrib import admin
from django.urls import path
from django.utils import timezone


def is_full_admin(user):
    """Superusers and members of the "Full administrator" role."""
    from invitations.roles import FULL_ADMIN

    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=FULL_ADMIN).exists()


def client_ip(request):
    """The address the request came from, as the WSGI server reports it (REMOTE_ADDR), or behind
    nginx the address nginx saw (mdmportal.proxies); never a header the client itself could set, which
    anyone could forge into the audit log."""
    return request.META.get("REMOTE_ADDR") or None


class AuditedAdminMixin:
    """Writes an AuditEvent next to Django's own LogEntry for every add, change and delete made in
    the console, so the audit log holds who, what, when and from where."""

    def _audit(self, request, action, obj, detail=None):
        from invitations.models import AuditEvent

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


class ReadOnlyAdminMixin:
    """A console page that shows records written only by the product itself (audit, alerts...)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _no_page(changelist, request):
    changelist.result_list, changelist.result_count, changelist.full_result_count = [], 0, 0
    changelist.show_all = changelist.multi_page = changelist.can_show_all = False


class WholeChangelistMixin:
    """`changelist_queryset(request)`: the rows of the list page as the request's query string filters,
    searches and sorts them, all pages together, for an export of "the current list". Django's
    ChangeList fetches a page and counts rows when it is built; an export needs neither, so the
    ChangeList class given for such a request (marked on the request: the ModelAdmin is shared by
    every request) skips that step."""

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if getattr(request, "_whole_changelist", False):
            return type(f"Whole{changelist.__name__}", (changelist,), {"get_results": _no_page})
        return changelist

    def changelist_queryset(self, request):
        """May raise IncorrectLookupParameters, as the list page does for a bad filter."""
        request._whole_changelist = True
        try:
            return self.get_changelist_instance(request).queryset
        finally:
            request._whole_changelist = False


class ConsoleSite(admin.AdminSite):
    site_header = "mdmportal console"
    site_title = "mdmportal"
    index_title = "Dashboard"
    index_template = "admin/console_index.html"

    def each_context(self, request):
        context = super().each_context(request)
        context["now"] = timezone.now()
        context["is_full_admin"] = request.user.is_authenticated and is_full_admin(request.user)
        return context

    def index(self, request, extra_context=None):
        from enrollment.models import EntraKeyAlert
        from invitations.dashboard import cards, counts
        from invitations.models import Organisation

        extra_context = {**(extra_context or {}), "counts": counts(), "cards": cards(request.user),
                         "organisation": Organisation.get(),
                         "entra_key_alerts": EntraKeyAlert.objects.open().count()}
        return super().index(request, extra_context)

    def get_urls(self):
        from invitations import wizard

        steps = [
            ("getting-started/", wizard.organisation_step, "getting_started"),
            ("getting-started/enrollment/", wizard.enrollment_step, "getting_started_enrollment"),
            ("getting-started/users/", wizard.users_step, "getting_started_users"),
            ("getting-started/done/", wizard.summary, "getting_started_done"),
        ]
        return [path(route, self.admin_view(view), name=name) for route, view, name in steps] + super().get_urls()
