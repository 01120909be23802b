"""Helpers every console page shares, whatever its app: where a request comes from, read-only pages,
exports of a whole list. Shared by every app, so it imports none: the admin site itself is
mdmportal/admin_site.py, who is a full administrator accounts/roles.py, the auditing of the
administrators' own add/change/delete (console and API alike) accounts/audit.py."""


def client_ip(request):
    """The address the request came from, as the WSGI server reports it (REMOTE_ADDR), or behind
    nginx the address nginx saw (mdmportal.proxies); never a header the client itself could set, which
    anyone could forge into the audit log."""
    return request.META.get("REMOTE_ADDR") or None


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
