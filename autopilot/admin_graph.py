"""Console pages of the optional Microsoft Graph connector: its settings page (with "test the
connection" and "synchronise now") and, on each Autopilot device's page, what Microsoft's Autopilot
service says about it.

The tenant credentials are organisation-wide, so only full administrators change them; enrollment
administrators may start a synchronisation; helpdesk reads. The client secret is write-only: the form
never renders it, and the audit log records only that it changed.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from django.utils.translation import gettext_lazy as _

from accounts.audit import AuditedAdminMixin
from accounts.models import AuditEvent
from accounts.roles import is_full_admin
from mdmportal.console import client_ip

from . import graph, graph_sync, tasks
from .graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync

REFUSED_SHOWN = 50


def _formfield(model_field, **kwargs):
    # Addresses typed without a scheme are taken as https, as Django 6 will do by default.
    if isinstance(model_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return model_field.formfield(**kwargs)


class GraphConnectorForm(forms.ModelForm):
    client_secret = forms.CharField(
        label=_("Client secret"), required=False, widget=forms.PasswordInput(render_value=False),
        help_text=_("The app registration's client secret (its value, not its id). Stored encrypted and never shown "
                  "again: leave empty to keep the saved one."))

    class Meta:
        model = GraphConnector
        fields = ["enabled", "client_id", "client_secret", "graph_base_url", "token_base_url"]
        formfield_callback = _formfield

    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("client_secret", "")
        if secret:
            # Sealed onto the instance before the model's own checks, which need to know a secret is there.
            self.instance.set_client_secret(secret)
        return cleaned


@admin.register(GraphConnector)
class GraphConnectorAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = GraphConnectorForm
    readonly_fields = ["tenant", "secret_state", "last_sync_at", "last_error"]
    change_form_template = "admin/autopilot/graphconnector/change_form.html"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_fieldsets(self, request, obj=None):
        credentials = ["tenant", "client_id", "secret_state"]
        if self.has_change_permission(request, obj):
            credentials.insert(2, "client_secret")
        return [
            (None, {"fields": ["enabled"]}),
            (_("Tenant and app registration"), {"fields": credentials}),
            (_("Endpoints"), {"fields": ["graph_base_url", "token_base_url"]}),
            (_("Last synchronisation"), {"fields": ["last_sync_at", "last_error"]}),
        ]

    @admin.display(description=_("tenant"))
    def tenant(self, connector):
        """Entered once, in the Entra ID settings: shown here with the way there."""
        url = reverse("admin:enrollment_entrasettings_changelist")
        if connector.tenant:
            return format_html('{} (<a href="{}">{}</a>)', connector.tenant, url, _("change in the Entra ID settings"))
        return format_html('{} <a href="{}">{}</a>', _("Not set yet:"), url, _("enter it in the Entra ID settings"))

    @admin.display(description=_("client secret"))
    def secret_state(self, connector):
        if not connector.has_client_secret:
            return _("none saved")
        return _("saved %(when)s (not shown)") % {"when": f"{connector.client_secret_set_at:%Y-%m-%d %H:%M}"}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and is_full_admin(request.user)

    def has_sync_permission(self, request):
        return request.user.has_perm("autopilot.change_autopilotdevice")

    def changelist_view(self, request, extra_context=None):
        # One connector: its list is its page.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect("admin:autopilot_graphconnector_change", GraphConnector.get().pk)

    def get_object(self, request, object_id, from_field=None):
        # The row is made on first use, whichever page is opened first.
        if object_id == str(GraphConnector.SINGLETON_PK):
            return GraphConnector.get()
        return super().get_object(request, object_id, from_field)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        statuses = dict(GraphDeviceSync.objects.values_list("status").annotate(n=Count("pk")).order_by())
        extra_context = {
            **(extra_context or {}),
            "can_sync": self.has_sync_permission(request),
            "can_test": self.has_change_permission(request),
            "device_counts": [(label, statuses.get(value, 0)) for value, label in GraphDeviceSync.Status.choices],
            "not_pushed": graph_sync.devices_to_push().count(),
            "refused": GraphDeviceSync.objects.filter(status=GraphDeviceSync.Status.REFUSED)
                                              .select_related("device").order_by("device__serial_key")[:REFUSED_SHOWN],
            "profile_errors": GraphProfileSync.objects.exclude(error_message="").select_related("profile"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("test/", self.admin_site.admin_view(require_POST(self.test_view)),
                 name="autopilot_graphconnector_test"),
            path("sync/", self.admin_site.admin_view(require_POST(self.sync_view)),
                 name="autopilot_graphconnector_sync"),
        ] + super().get_urls()

    def test_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        connector = GraphConnector.get()
        try:
            self.message_user(request, graph_sync.test_connection(connector), messages.SUCCESS)
        except graph.Retry as exc:
            self.message_user(request, _("Microsoft Graph did not answer in time: %(error)s") % {"error": exc.message},
                              messages.WARNING)
        except graph.GraphError as exc:
            self.message_user(request, _("The connection failed: %(error)s") % {"error": exc.message}, messages.ERROR)
        return redirect("admin:autopilot_graphconnector_change", connector.pk)

    def sync_view(self, request):
        if not self.has_sync_permission(request):
            raise PermissionDenied
        connector = GraphConnector.get()
        if not connector.enabled:
            self.message_user(request, _("The connector is off: nothing was sent."), messages.ERROR)
            return redirect("admin:autopilot_graphconnector_change", connector.pk)
        retry_refused = request.POST.get("retry_refused") == "1"
        AuditEvent.record(request.user, "graphconnector.sync", connector, ip=client_ip(request),
                          detail={"retry_refused": retry_refused})
        transaction.on_commit(lambda: tasks.sync_with_graph.delay(retry_refused=retry_refused))
        self.message_user(request, _("Synchronisation with Microsoft's Autopilot service started; refresh this page "
                                   "to follow it."), messages.SUCCESS)
        return redirect("admin:autopilot_graphconnector_change", connector.pk)


class GraphDeviceStatusInline(admin.StackedInline):
    """On an Autopilot device's page: its import into Microsoft's service and the status pulled back."""

    model = GraphDeviceSync
    fk_name = "device"
    extra = 0
    can_delete = False
    fields = [("status", "pushed_at", "checked_at"), ("error_code", "error_name"), "error_message",
              ("identity_id", "pulled_at"), ("profile_assignment_status", "enrollment_state", "last_contacted_at")]
    readonly_fields = ["status", "pushed_at", "checked_at", "error_code", "error_name", "error_message",
                       "identity_id", "pulled_at", "profile_assignment_status", "enrollment_state",
                       "last_contacted_at"]
    verbose_name_plural = _("Microsoft Autopilot service (Graph connector)")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

