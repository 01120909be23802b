"""The administrators' console: Django's admin site, titled and with a dashboard."""
from django.contrib import admin
from django.utils import timezone


class ConsoleSite(admin.AdminSite):
    site_header = "mdmportal console"
    site_title = "mdmportal"
    index_title = "Dashboard"
    index_template = "admin/console_index.html"

    def each_context(self, request):
        context = super().each_context(request)
        context["now"] = timezone.now()
        return context

    def index(self, request, extra_context=None):
        from invitations.dashboard import counts

        extra_context = {**(extra_context or {}), "counts": counts()}
        return super().index(request, extra_context)
