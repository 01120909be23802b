"""Console pages for Autopilot: profiles (with group tags, essential apps and the offline file),
imports (upload, progress, report), devices (pending or enrolled, effective profile and why, assign,
export) and the enrollments recognised as Autopilot.

Enrollment administrators manage all of it, helpdesk reads it (accounts/roles.py); the permission
methods decide, not the templates.
"""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.audit import AuditedAdminMixin
from mdmportal.console import client_ip

from . import assignment, imports, offline
from .admin_graph import GraphDeviceStatusInline  # also registers the Graph connector's page
from .models import (AppInstall, AutopilotDevice, AutopilotEnrollment, DeviceImport, EssentialApp, GroupTagRule,
                     ImportRow, Profile, ProvisioningItem)

REPORT_PAGE_SIZE = 200


class GroupTagInline(admin.TabularInline):
    model = GroupTagRule
    extra = 1
    verbose_name = gettext_lazy("group tag")
    verbose_name_plural = gettext_lazy("Group tags (devices imported with one of these tags get this profile)")


class EssentialAppInline(admin.StackedInline):
    model = EssentialApp
    extra = 0
    fields = ["name", "kind", ("msi_url", "product_code"), ("sha256", "version"), "command_line",
              ("store_id", "package_family_name"), ("store_sku", "store_claim_seat")]
    verbose_name_plural = (gettext_lazy("Essential apps (installed during setup; MSI: URL, product code and hash; Store: product "
                           "id, family name and SKU, installed for the user once signed in, so not with "
                           "self-deploying profiles)"))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # An MSI URL typed without a scheme is taken as https (Django 6's default), never plain http.
        if db_field.name == "msi_url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Profile)
class ProfileAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "device_type", "deployment_mode", "allow_pre_provisioning", "join_type", "is_default",
                    "tags", "offline_file"]
    list_filter = ["device_type", "deployment_mode", "join_type", "is_default"]
    search_fields = ["name", "description", "group_tags__tag"]
    inlines = [GroupTagInline, EssentialAppInline]
    autocomplete_fields = ["configuration_groups"]
    readonly_fields = ["ztd_correlation_id", "created_at", "updated_at", "app_installs"]
    fieldsets = [
        (None, {"fields": ["name", "description", "is_default"]}),
        (gettext_lazy("Deployment"),
         {"fields": ["device_type", "deployment_mode", "allow_pre_provisioning", "join_type",
                                   "convert_all_targeted_devices", "device_name_template"]}),
        (gettext_lazy("Out-of-box experience"), {"fields": ["user_account_type", "hide_eula", "hide_privacy_settings",
                                              "hide_change_account_options", "language", "configure_keyboard",
                                              "autopilot_update_during_oobe"]}),
        (gettext_lazy("After enrollment"), {"fields": ["tenant_lockdown", "configuration_groups"]}),
        (gettext_lazy("Enrollment Status Page"), {"fields": ["esp_enabled", "esp_timeout_minutes", "esp_block_device",
                                               ("esp_allow_reset", "esp_allow_retry", "esp_allow_continue"),
                                               "esp_fail_on"]}),
        (gettext_lazy("Essential apps on devices"), {"fields": ["app_installs", "app_stall_minutes", "app_retry_count",
                                                  "app_stall_blocks"]}),
        (gettext_lazy("Offline profile file"), {"fields": ["ztd_correlation_id", "created_at", "updated_at"]}),
    ]

    @admin.display(description=gettext_lazy("install status"))
    def app_installs(self, profile):
        """Per essential app: how many devices have it installed, installing, failed."""
        if profile.pk is None:
            return "—"
        rows = []
        for app in profile.essential_apps.all():
            counts = dict(app.installs.values_list("state").annotate(n=Count("pk")).order_by())
            link = reverse("admin:autopilot_appinstall_changelist") + f"?app__id__exact={app.pk}"
            rows.append((link, app.name, *(counts.get(state, 0) for state in AppInstall.State.values)))
        if not rows:
            return _("No essential apps.")
        body = format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                                rows)
        heads = format_html_join("", "<th>{}</th>", ((label,) for label in AppInstall.State.labels))
        return format_html("<table><tr><th>App</th>{}</tr>{}</table>", heads, body)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("group_tags")

    @admin.display(description=gettext_lazy("group tags"))
    def tags(self, profile):
        return ", ".join(rule.tag for rule in profile.group_tags.all()) or "—"

    @admin.display(description=gettext_lazy("offline file"))
    def offline_file(self, profile):
        url = reverse("admin:autopilot_profile_offline_file", args=[profile.pk])
        return format_html('<a href="{}">{}</a>', url, offline.FILE_NAME)

    def get_urls(self):
        return [
            path("<int:pk>/offline-file/", self.admin_site.admin_view(self.offline_file_view),
                 name="autopilot_profile_offline_file"),
        ] + super().get_urls()

    def offline_file_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        profile = get_object_or_404(Profile, pk=pk)
        try:
            content = offline.configuration_file(profile)
        except offline.TenantNotConfigured:
            self.message_user(request, format_html(
                '{} <a href="{}">{}</a>', _("The offline file names your Microsoft Entra tenant: its id and domain "
                                            "are needed first."),
                reverse("admin:enrollment_entrasettings_changelist"), _("Enter them in the Entra ID settings.")),
                messages.ERROR)
            return HttpResponseRedirect(reverse("admin:autopilot_profile_change", args=[pk]))
        return offline_file_response(content)


def offline_file_response(content):
    response = HttpResponse(content, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{offline.FILE_NAME}"'
    return response


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file"),
                           help_text=gettext_lazy("The file Windows (Get-WindowsAutopilotInfo) or your "
                                                      "reseller produced. Any size."))


@admin.register(DeviceImport)
class DeviceImportAdmin(admin.ModelAdmin):
    # Updated and unchanged counts are on the report, one click away: the list fits a laptop.
    list_display = ["__str__", "status", "progress", "created_count", "failed_count", "uploaded_by", "created_at"]
    list_filter = ["status"]
    list_select_related = ["uploaded_by"]
    search_fields = ["file_name"]

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, device_import):
        return f"{device_import.processed_rows} / {device_import.total_rows}"

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("<int:pk>/report/", self.admin_site.admin_view(self.report_view), name="autopilot_deviceimport_report"),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            device_import = imports.create_import(form.cleaned_data["file"], actor=request.user, ip=client_ip(request))
            # Only what is sure now: the report page below says, as it refreshes, where the import stands.
            self.message_user(request, _("%(file)s is uploaded.") % {"file": device_import.file_name})
            return HttpResponseRedirect(reverse("admin:autopilot_deviceimport_report", args=[device_import.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": _("Import Autopilot devices"),
            "form": form, "columns": imports.COLUMNS,
        }
        return TemplateResponse(request, "autopilot/import_form.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:autopilot_deviceimport_report", args=[object_id]))

    def report_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        device_import = get_object_or_404(DeviceImport.objects.select_related("uploaded_by"), pk=pk)
        result = request.GET.get("result", "")
        rows = device_import.rows.select_related("device").order_by("line")
        if result in ImportRow.Result.values:
            rows = rows.filter(result=result)
        page = Paginator(rows, REPORT_PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": _("Import of %(file)s") % {"file": device_import.file_name},
            "device_import": device_import, "page": page, "result": result, "results": ImportRow.Result.choices,
            "refresh": not device_import.is_finished,
        }
        return TemplateResponse(request, "autopilot/import_report.html", context)


class StateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", _("Pending (not enrolled yet)")), ("enrolled", _("Enrolled"))]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(is_enrolled=False)
        if self.value() == "enrolled":
            return queryset.filter(is_enrolled=True)
        return queryset


class AssignProfileForm(forms.Form):
    profile = forms.ModelChoiceField(Profile.objects.all(), required=False,
                                     empty_label=gettext_lazy("— none: use group tag or default —"))


class EnrollmentInline(admin.TabularInline):
    model = AutopilotEnrollment
    fk_name = "record"
    extra = 0
    fields = ["device", "matched_by", "profile", "profile_reason", "created_at", "applied_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = gettext_lazy("Enrollments of this device")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AutopilotDevice)
class AutopilotDeviceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_filter = [StateFilter, ("profile", admin.RelatedOnlyFieldListFilter), "group_tag"]
    # Trigram indexes serve the search (migration 0002, mdmportal/search.py); one COUNT per page, not a
    # second of the whole table (100,000 records from one import).
    search_fields = ["serial_number", "group_tag", "assigned_user", "product_id", "ztd_id"]
    show_full_result_count = False
    list_select_related = ["profile", "profile_assigned_by"]
    change_list_template = "autopilot/device_change_list.html"
    actions = ["assign_profile", "export_csv"]
    inlines = [EnrollmentInline, GraphDeviceStatusInline]
    fieldsets = [
        (None, {"fields": ["serial_number", "state", "group_tag", "assigned_user", "profile", "effective"]}),
        (gettext_lazy("Hardware"), {"fields": ["product_id", "hardware_hash", "ztd_id"]}),
        (gettext_lazy("History"),
         {"fields": ["profile_assigned_by", "profile_assigned_at", "source_import", "created_at",
                                "updated_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_state()

    def get_readonly_fields(self, request, obj=None):
        return ["serial_number", "state", "effective", "product_id", "hardware_hash", "profile_assigned_by",
                "profile_assigned_at", "source_import", "created_at", "updated_at"]

    def get_list_display(self, request):
        resolve = assignment.Resolver()

        @admin.display(description=_("effective profile"))
        def effective_profile(device):
            found = resolve(device)
            return format_html("{}<br><small>{}</small>", found.profile or "—", found.reason)

        return ["serial_number", "state", "group_tag", "assigned_user", effective_profile, "product_id", "created_at"]

    @admin.display(description=gettext_lazy("state"), boolean=False)
    def state(self, device):
        return {"enrolled": _("enrolled"), "pending": _("pending")}[device.enrollment_state]

    @admin.display(description=gettext_lazy("effective profile"))
    def effective(self, device):
        found = assignment.effective_profile(device)
        return f"{found.profile or '—'} ({found.reason})"

    def has_add_permission(self, request):
        # Records come from imports (or the API), as in Microsoft's service.
        return False

    def save_model(self, request, obj, form, change):
        if "profile" in form.changed_data:
            obj.assign_profile(obj.profile, by=request.user)
        super().save_model(request, obj, form, change)

    @admin.action(description=gettext_lazy("Assign profile"), permissions=["change"])
    def assign_profile(self, request, queryset):
        form = AssignProfileForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            profile = form.cleaned_data["profile"]
            count = assignment.assign(queryset, profile, actor=request.user, ip=client_ip(request))
            if profile:
                message = ngettext("%(count)d device now has the profile “%(profile)s”.",
                                   "%(count)d devices now have the profile “%(profile)s”.", count)
            else:
                message = ngettext("%(count)d device now has no explicit profile.",
                                   "%(count)d devices now have no explicit profile.", count)
            self.message_user(request, message % {"count": count, "profile": profile}, messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": _("Assign a profile"),
            "form": form, "devices": queryset, "count": queryset.count(),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "autopilot/assign_profile.html", context)

    @admin.action(description=gettext_lazy("Export as CSV (Windows format)"), permissions=["view"])
    def export_csv(self, request, queryset):
        return export_response(queryset)

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_all_view), name="autopilot_autopilotdevice_export"),
        ] + super().get_urls()

    def export_all_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return export_response(AutopilotDevice.objects.all())


def export_response(queryset):
    response = StreamingHttpResponse(imports.export_lines(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="autopilot-devices.csv"'
    return response


def items_table(link, items=None):
    """The status page's items of one enrollment, with their state (device page and provisioning page);
    `items` when the caller has read them already."""
    items = list(link.items.all()) if items is None else items
    if not items:
        return "—"
    rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (item.get_kind_display(), item.label, item.get_state_display(), item.detail or "",
         item.completed_at.strftime("%Y-%m-%d %H:%M:%S") if item.completed_at else "") for item in items))
    return format_html("<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
                       _("Kind"), _("Item"), _("State"), _("Detail"), _("Settled"), rows)


def progress(link, items=None):
    if link.esp_state in (AutopilotEnrollment.EspState.NONE, AutopilotEnrollment.EspState.SKIPPED):
        return "—"
    counts = link.counts(items)
    return _("%(done)d done, %(failed)d failed of %(expected)d") % counts


def later_users(link):
    """Whether the people who sign in after the first one skip the account-setup page: the
    SkipUserStatusPage the server queued (at once when the profile has nothing for the account setup,
    else once the first user's page was released) and where it stands."""
    command = link.skip_user_page_command
    if command is not None:
        return _("Later users skip the account-setup page (SkipUserStatusPage %(status)s)") % {
            "status": command.get_status_display().lower()}
    if link.esp_state == AutopilotEnrollment.EspState.NONE:
        return "—"
    return _("Not yet: later users skip the account-setup page once it is released")


class StalledFilter(admin.SimpleListFilter):
    """Enrollments (or installs) with an MSI install found stalled: sent again and waiting, or given up."""

    title = gettext_lazy("stalled app install")
    parameter_name = "stalled"

    def __init__(self, request, params, model, model_admin):
        self.prefix = "" if model is AppInstall else "device__app_installs__"
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [("yes", _("Stalled")), ("no", _("Not stalled"))]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        if self.prefix:
            stalled = Exists(AppInstall.objects.filter(AppInstall.stalled_q(), device=OuterRef("device")))
            return queryset.filter(stalled if self.value() == "yes" else ~stalled)
        return queryset.filter(AppInstall.stalled_q()) if self.value() == "yes" else queryset.exclude(
            AppInstall.stalled_q())


USER_PHASE_FIELDS = ["user_esp_state", "user_esp_started_at", "user_esp_deadline", "user_esp_finished_at",
                     "user_esp_acknowledged_at", "user_esp_note", "later_users"]


@admin.register(AutopilotEnrollment)
class AutopilotEnrollmentAdmin(admin.ModelAdmin):
    """Read-only: links are made by enrollments. The list is the Autopilot provisioning list: each
    device's Enrollment Status Page, expected / done / failed, and when it started and ended."""

    # What a helpdesk looks for, in a laptop's width; the timings and the matching are on the enrollment's page.
    list_display = ["device", "profile", "setup_status", "setup_progress", "stalled_apps", "esp_finished_at",
                    "user_esp_state"]
    list_filter = ["esp_state", "user_esp_state", StalledFilter, "matched_by",
                   ("applied_at", admin.EmptyFieldListFilter)]
    list_select_related = ["device", "record", "profile"]
    search_fields = ["device__device_id", "device__name", "record__serial_number"]
    fieldsets = [
        (None, {"fields": ["device", "record", "matched_by", "profile", "profile_reason", "correlation_id",
                           "user_applied", "created_at", "applied_at"]}),
        (gettext_lazy("Enrollment Status Page"),
         {"fields": ["esp_state", "setup_progress", "esp_started_at", "esp_deadline",
                                               "esp_timeout_minutes", "esp_finished_at", "esp_acknowledged_at",
                                               "esp_note", "items"]}),
        (gettext_lazy("Account setup (Store apps, once a user signed in)"), {"fields": USER_PHASE_FIELDS}),
    ]

    def get_queryset(self, request):
        stalled = AppInstall.objects.filter(AppInstall.stalled_q(), device=OuterRef("device")).order_by().values(
            "device").annotate(n=Count("pk")).values("n")
        return (super().get_queryset(request).select_related("skip_user_page_command")
                .prefetch_related(Prefetch("items", ProvisioningItem.objects.order_by("pk")))
                .annotate(stalled_count=Coalesce(Subquery(stalled), 0)))

    @admin.display(description=gettext_lazy("stalled apps"), ordering="stalled_count")
    def stalled_apps(self, link):
        return _("%(count)d stalled") % {"count": link.stalled_count} if link.stalled_count else "—"

    def get_readonly_fields(self, request, obj=None):
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    @admin.display(description=gettext_lazy("setup"), ordering="esp_state")
    def setup_status(self, link):
        return link.get_esp_state_display()

    @admin.display(description=gettext_lazy("expected / done / failed"))
    def setup_progress(self, link):
        return progress(link)

    @admin.display(description=gettext_lazy("items"))
    def items(self, link):
        return items_table(link)

    @admin.display(description=gettext_lazy("later users"))
    def later_users(self, link):
        return later_users(link)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only, but the detail page stays reachable for anyone who may view it.
        return False


@admin.register(AppInstall)
class AppInstallAdmin(admin.ModelAdmin):
    """Essential apps on devices: queued, installing, installed or failed, with the device's last word."""

    list_display = ["name", "device", "state_badge", "last_error", "attempts", "completed_at"]
    list_filter = ["state", StalledFilter, "kind", ("app", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["device"]
    search_fields = ["name", "identifier", "device__name", "device__device_id"]
    readonly_fields = ["device", "app", "name", "kind", "identifier", "state", "install_command", "status_command",
                       "error_command", "reported_status", "last_error", "polls", "attempts", "progress_at",
                       "stalls_at", "stalled_at", "stall_minutes", "retry_count", "stall_blocks", "created_at",
                       "updated_at", "completed_at"]

    STATE_BADGES = {AppInstall.State.INSTALLED: "ok", AppInstall.State.FAILED: "danger",
                    AppInstall.State.STALLED: "warning"}

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_badge(self, install):
        return format_html('<span class="badge badge-{}">{}</span>', self.STATE_BADGES.get(install.state, "progress"),
                           install.get_state_display())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
