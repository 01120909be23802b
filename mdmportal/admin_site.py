"""The administrators' console: Django's admin site, titled, with pages grouped by task
(mdmportal/navigation.py), a dashboard (mdmportal/dashboard.py) and the getting-started wizard. Part of
the project's assembly: it stands above every app."""
from django.contrib import admin
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from enrollment.models import EntraKeyAlert
from invitations import wizard

from . import dashboard, navigation


class ConsoleSite(admin.AdminSite):
    site_header = _("mdmportal console")
    site_title = _("mdmportal")
    index_title = _("Dashboard")
    index_template = "admin/console_index.html"

    def each_context(self, request):
        context = super().each_context(request)
        context["now"] = timezone.now()
        context["is_full_admin"] = navigation.full_admin(request)
        return context

    def get_app_list(self, request, app_label=None):
        """The sidebar and the dashboard list pages by task (mdmportal/navigation.py); an app's own index
        page (/admin/<app>/, linked from nowhere now) keeps Django's list of that app's models, in plain
        words."""
        if app_label is not None:
            return navigation.app_index_list(super().get_app_list(request, app_label))
        return navigation.app_list(request, self._build_app_dict(request))

    def index(self, request, extra_context=None):
        now = timezone.now()
        cards, devices = dashboard.figures(request, now)
        # Every section but the dashboard itself, which this page is.
        sections = [section for section in self.get_app_list(request)
                    if section["app_label"] != f"section-{navigation.DASHBOARD}"]
        extra_context = {**(extra_context or {}), "cards": cards, "app_list": sections,
                         "charts": dashboard.chart_list(request, devices, now),
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
