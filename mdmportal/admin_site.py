"""The administrators' console: Django's admin site, titled, with a dashboard (the apps' figures and
cards, invitations/dashboard.py) and the getting-started wizard. Part of the project's assembly: it
stands above every app."""
from django.contrib import admin
from django.urls import path
from django.utils import timezone

from accounts.models import Organisation
from accounts.roles import is_full_admin
from enrollment.models import EntraKeyAlert
from invitations import wizard
from invitations.dashboard import cards, counts

from . import navigation


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

    def get_app_list(self, request, app_label=None):
        """The sidebar and the dashboard list pages by task (mdmportal/navigation.py); an app's own index
        page (/admin/<app>/) keeps Django's list of that app's models."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        return navigation.app_list(request, self._build_app_dict(request))

    def index(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "counts": counts(), "cards": cards(request.user),
                         "organisation": Organisation.get(),
                         "entra_key_alerts": EntraKeyAlert.objects.open().count()}
        return super().index(request, extra_context)

    def get_urls(self):
        steps = [
            ("getting-started/", wizard.organisation_step, "getting_started"),
            ("getting-started/enrollment/", wizard.enrollment_step, "getting_started_enrollment"),
            ("getting-started/users/", wizard.users_step, "getting_started_users"),
            ("getting-started/done/", wizard.summary, "getting_started_done"),
        ]
        return [path(route, self.admin_view(view), name=name) for route, view, name in steps] + super().get_urls()
