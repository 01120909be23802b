"""Console pages for enrolled devices (a filtered list and a read-only detail page; devices are created
only by enrollment, never by hand; management/admin.py adds their commands, actions and settings),
registration PINs and provisioning-package PIN enrollments."""
from typing import NamedTuple

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from accounts.audit import AuditedAdminMixin
from accounts.models import AuditEvent
from invitations.models import InvalidTransition
from mdmportal.console import client_ip
from mdmportal.search import SubquerySearchMixin

from . import checkins, ppkg, wcd
from .admin_troubleshooting import TroubleshootingMixin
from .console_forms import PinEnrollmentForm, with_options
from .models import Device, PinEnrollment, RegistrationPin

# Sections of apps built on this one (Autopilot), which this app must not import, shown on the device's
# page above the sections of its own class, in registration order.
_device_inlines = []


def register_device_inlines(*inlines):
    """Add inline classes of the Device (fk "device") to the enrolled device's console page. Each must
    read its rows in a fixed number of queries whatever the device (tests/test_devices_admin_queries.py)."""
    for inline in inlines:
        if inline not in _device_inlines:
            _device_inlines.append(inline)


class _DevicePageRead(NamedTuple):
    """The device a device page's request read (DeviceAdmin.get_object), kept on the request so that the
    page reads it once."""
    object_id: str
    from_field: str | None
    device: Device | None


_DEVICE_PAGE_READ = "_device_page_read"  # the request's attribute holding its _DevicePageRead


class CheckInFilter(admin.SimpleListFilter):
    """Devices by their last check-in (enrollment/checkins.py), as the dashboard counts them."""

    title = _("last check-in")
    parameter_name = "checkin"

    def lookups(self, request, model_admin):
        return [*checkins.FRESHNESS, (checkins.SILENT, checkins.LABELS[checkins.SILENT])]

    def queryset(self, request, queryset):
        match = checkins.q(self.value())
        return queryset if match is None else queryset.filter(match)


@admin.register(Device)
class DeviceAdmin(AuditedAdminMixin, TroubleshootingMixin, SubquerySearchMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "user", "status", "method", "enrollment_type", "os_version", "model",
                    "enrolled_at", "last_seen_at"]
    # Sized for 100,000 devices (bench/devices.py): no filter listing every user (that sidebar was tens of
    # thousands of links; search by email instead, or ?user__id__exact=), enrollment dates as fixed ranges
    # rather than a date hierarchy (a DISTINCT over the whole table), and one COUNT per page, not two. The
    # search uses trigram indexes and searches the owners' emails in the user table (mdmportal/search.py).
    list_filter = ["kind", "status", CheckInFilter, "method", "enrollment_type", "enrolled_at",
                   ("pin_enrollment", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "device_id", "hw_dev_id", "user__email", "upn", "certificate_serial",
                     "certificate_thumbprint", "serial_number", "model", "entra_device_id"]
    # A whole email address finds the devices of that owner or UPN, exactly (mdmportal/search.py).
    email_search_fields = ["upn", "user__email"]
    list_select_related = ["user"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "user", "upn", "method", "pin_enrollment", "enrollment_type",
                           "enrolled_at", "last_seen_at", "login_status", "unenrolled_at", "replaced_by",
                           "released_for_reenrollment_at", "released_for_reenrollment_by"]}),
        (_("Hardware and system"), {"fields": ["device_id", "hw_dev_id", "entra_device_id", "manufacturer", "model",
                                            "serial_number", "os_version", "os_edition", "os_platform", "architecture",
                                            "total_ram_mb", "hardware_data_excerpt", "inventory_at"]}),
        (_("Certificate"), {"fields": ["certificate_serial", "certificate_thumbprint", "certificate_not_after",
                                    "certificate_renewed_at", "previous_certificate_serial", "revoked_at"],
                         "classes": ["collapse"]}),
        (_("Enrollment request"), {"fields": ["context_table"], "classes": ["collapse"]}),
    ]

    def get_inlines(self, request, obj):
        return [*_device_inlines, *self.inlines]

    @admin.display(description=_("DeviceHardwareData"))
    def hardware_data_excerpt(self, device):
        return Truncator(device.hardware_data).chars(60) if device.hardware_data else "—"

    @admin.display(description=_("Context items"))
    def context_table(self, device):
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((n, v) for n, v in device.context_items))
        return format_html("<table>{}</table>", rows) if device.context_items else "—"

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def get_object(self, request, object_id, from_field=None):
        """The device with the related rows its page shows (owner, PIN enrollment, replacement), so that the
        page makes the same queries whichever are set; read once per request, though both the page's context
        (DeviceActionsMixin.change_view) and Django's view ask for it."""
        read = getattr(request, _DEVICE_PAGE_READ, None)
        if read is None or (read.object_id, read.from_field) != (object_id, from_field):
            read = _DevicePageRead(object_id, from_field, self._device_for_page(request, object_id, from_field))
            setattr(request, _DEVICE_PAGE_READ, read)
        return read.device

    def _device_for_page(self, request, object_id, from_field):
        queryset = self.get_queryset(request).select_related("user", "pin_enrollment", "replaced_by",
                                                              "released_for_reenrollment_by")
        field = Device._meta.pk if from_field is None else Device._meta.get_field(from_field)
        try:
            return queryset.get(**{field.name: field.to_python(object_id)})
        except (Device.DoesNotExist, ValidationError, ValueError):
            return None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only, but the detail page stays reachable for anyone who may view devices.
        return False


@admin.register(RegistrationPin)
class RegistrationPinAdmin(admin.ModelAdmin):
    """Who holds a registration PIN and what became of it. PINs are issued by the invitation flow and
    shown only to their user; the console never sees them."""

    list_display = ["user", "created_at", "expires_at", "consumed_at", "consumed_by", "revoked_at"]
    list_filter = [("consumed_at", admin.EmptyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email"]
    list_select_related = ["user", "consumed_by"]
    readonly_fields = ["user", "created_at", "created_by", "expires_at", "consumed_at", "consumed_by", "revoked_at"]
    exclude = ["pin_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PinEnrollment)
class PinEnrollmentAdmin(admin.ModelAdmin):
    """Provisioning-package enrollments. Creating one or regenerating its PIN shows the PIN
    once, with its Windows Configuration Designer project; it is stored only as a hash, so later the
    project can be rebuilt only by typing the PIN again."""

    form = PinEnrollmentForm
    list_display = ["name", "upn", "owner", "usage", "expires_at", "status_display"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "upn", "owner__email"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    change_form_template = "admin/enrollment/pinenrollment/change_form.html"
    EDITABLE = ["name", "upn", "owner", "expires_at", "max_devices"]
    SHOWN = ["status_display", "usage", "lock_state", "created_by", "created_at", "pin_changed_at", "revoked_at",
             "devices_table"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_device_count()

    def get_fields(self, request, obj=None):
        # The options of apps above this one (ppkg.register_option) follow the owner; read-only, they are
        # shown as text (their form fields are not the model's).
        options = [option.name for option in ppkg.options()]
        if obj is not None and options and not self.has_change_permission(request, obj):
            options = ["options_shown"]
        editable = [*self.EDITABLE[:3], *options, *self.EDITABLE[3:]]
        return editable if obj is None else [*editable, *self.SHOWN]

    @admin.display(description=_("Options"))
    def options_shown(self, pin_enrollment):
        rows = []
        for option in ppkg.options():
            field = option.form_field()
            values = ", ".join(str(value) for value in option.initial(pin_enrollment)) or "—"
            rows.append((field.label or option.name.replace("_", " ").capitalize(), values))
        return format_html_join(mark_safe("<br>"), "{}: {}", rows)

    def get_form(self, request, obj=None, **kwargs):
        return super().get_form(request, obj, form=with_options(self.form), **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The UPN is in every package built for it: changing it would orphan them.
        return [] if obj is None else ["upn", *self.SHOWN]

    def has_delete_permission(self, request, obj=None):
        # Devices keep pointing at the enrollment they came from: revoke instead.
        return False

    @admin.display(description=_("used / maximum"))
    def usage(self, pin_enrollment):
        return f"{pin_enrollment.used_count()} / {pin_enrollment.max_devices}"

    @admin.display(description=_("status"))
    def status_display(self, pin_enrollment):
        return pin_enrollment.status_label

    @admin.display(description=_("wrong PINs"))
    def lock_state(self, pin_enrollment):
        if pin_enrollment.is_locked:
            return format_html(_("<strong>Locked until {}</strong> (lockout {} in a row)"),
                               pin_enrollment.locked_until.strftime("%Y-%m-%d %H:%M %Z"), pin_enrollment.lockouts)
        return _("%(count)d from any address in the backstop's window") % {"count": pin_enrollment.failed_attempts}

    @admin.display(description=_("enrolled devices"))
    def devices_table(self, pin_enrollment):
        devices = list(pin_enrollment.devices.select_related("user")[:50])
        if not devices:
            return "—"
        rows = format_html_join("", "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (reverse("admin:enrollment_device_change", args=[d.pk]), d, d.device_id, d.get_status_display(),
             d.enrolled_at.strftime("%Y-%m-%d %H:%M")) for d in devices))
        all_url = reverse("admin:enrollment_device_changelist") + f"?pin_enrollment__id__exact={pin_enrollment.pk}"
        return format_html('<table><tr><th>Name</th><th>DeviceID</th><th>Status</th><th>Enrolled</th></tr>{}</table>'
                           '<p><a href="{}">All devices of this provisioning package</a></p>', rows, all_url)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            for option in ppkg.options():
                if option.name in form.changed_data:
                    option.save(obj, form.cleaned_data[option.name])
            AuditEvent.record(request.user, "pin_enrollment.changed", obj, ip=client_ip(request),
                              detail={"fields": form.changed_data})
            return
        # In memory only, for the one-time page that response_add renders.
        values = {option.name: form.cleaned_data[option.name] for option in ppkg.options()}
        obj.issued_pin = ppkg.issue(obj, values=values, actor=request.user, ip=client_ip(request))

    def response_add(self, request, obj, post_url_continue=None):
        return self._pin_page(request, obj, obj.issued_pin, created=True)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pin_enrollment = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_manage": pin_enrollment is not None and self.has_change_permission(request, pin_enrollment),
            "alerts": AuditEvent.objects.filter(
                action__in=["pin_enrollment.locked", "pin_enrollment.address_locked"],
                target_type=PinEnrollment._meta.label, target_id=str(object_id))[:5],
            "locked_addresses": pin_enrollment.address_failures.filter(locked_until__gt=timezone.now()).count()
            if pin_enrollment is not None else 0,
            "has_failures": pin_enrollment is not None and pin_enrollment.has_failures(),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        views = [
            ("regenerate/", self.regenerate_view, "regenerate"),
            ("revoke/", self.revoke_view, "revoke"),
            ("unlock/", self.unlock_view, "unlock"),
            ("wcd-project/", self.wcd_project_view, "wcd_project"),
        ]
        return [path(f"<int:pk>/{route}", self.admin_site.admin_view(view), name=f"enrollment_pinenrollment_{name}")
                for route, view, name in views] + super().get_urls()

    def _managed(self, request, pk):
        pin_enrollment = get_object_or_404(PinEnrollment.objects.with_device_count(), pk=pk)
        if not self.has_change_permission(request, pin_enrollment):
            raise PermissionDenied
        return pin_enrollment

    def _back(self, pin_enrollment):
        return redirect("admin:enrollment_pinenrollment_change", pin_enrollment.pk)

    def _confirm(self, request, pin_enrollment, title, explanation, button):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                   "pin_enrollment": pin_enrollment, "explanation": explanation, "button": button}
        return TemplateResponse(request, "admin/enrollment/pinenrollment/confirm.html", context)

    def _pin_page(self, request, pin_enrollment, pin, *, created):
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "pin_enrollment": pin_enrollment,
            "pin": pin, "created": created, "discovery_url": ppkg.discovery_url(),
            "title": _("Provisioning package created") if created else _("New PIN"),
        }
        return TemplateResponse(request, "admin/enrollment/pinenrollment/pin_once.html", context)

    def regenerate_view(self, request, pk):
        pin_enrollment = self._managed(request, pk)
        if request.method != "POST":
            return self._confirm(request, pin_enrollment, _("Regenerate the PIN?"),
                                 _("Packages built with the current PIN stop enrolling devices at once; devices "
                                   "already enrolled stay enrolled. You get the new PIN and a new project to rebuild "
                                   "the package."),
                                 _("Yes, make a new PIN"))
        try:
            pin = ppkg.regenerate(pin_enrollment, actor=request.user, ip=client_ip(request))
        except InvalidTransition:
            self.message_user(request, _("A revoked provisioning package gets no new PIN."), messages.ERROR)
            return self._back(pin_enrollment)
        return self._pin_page(request, pin_enrollment, pin, created=False)

    def revoke_view(self, request, pk):
        pin_enrollment = self._managed(request, pk)
        if request.method != "POST":
            return self._confirm(request, pin_enrollment, _("Revoke this provisioning package?"),
                                 _("Its packages stop enrolling devices for good; devices already enrolled stay "
                                   "enrolled."),
                                 _("Yes, revoke it"))
        try:
            ppkg.revoke(pin_enrollment, actor=request.user, ip=client_ip(request))
            self.message_user(request, _("%(pin_enrollment)s is revoked.") % {"pin_enrollment": pin_enrollment},
                              messages.SUCCESS)
        except InvalidTransition:
            self.message_user(request, _("This provisioning package was already revoked."), messages.WARNING)
        return self._back(pin_enrollment)

    def unlock_view(self, request, pk):
        pin_enrollment = self._managed(request, pk)
        if request.method != "POST":
            return self._confirm(request, pin_enrollment, _("Unlock this provisioning package?"),
                                 _("Devices may try its PIN again at once, and the count of wrong PINs starts over. If "
                                   "someone is guessing the PIN, regenerate it instead."), _("Yes, unlock it"))
        try:
            ppkg.unlock(pin_enrollment, actor=request.user, ip=client_ip(request))
            self.message_user(request, _("%(pin_enrollment)s is unlocked.") % {"pin_enrollment": pin_enrollment},
                              messages.SUCCESS)
        except InvalidTransition:
            self.message_user(request, _("This provisioning package is not locked."), messages.WARNING)
        return self._back(pin_enrollment)

    def wcd_project_view(self, request, pk):
        """The project zip, for the PIN posted with it (the one-time page posts it; later an
        administrator types it). POST only: the PIN never goes into a URL or a log."""
        pin_enrollment = self._managed(request, pk)
        if request.method != "POST":
            return self._back(pin_enrollment)
        pin = request.POST.get("pin", "").strip()
        if not pin_enrollment.is_usable:
            self.message_user(request, _("This provisioning package is revoked or expired: it would not enroll."),
                              messages.ERROR)
            return self._back(pin_enrollment)
        if not ppkg.pin_matches(pin_enrollment, pin):
            self.message_user(request, _("That is not this provisioning package's current PIN: no project was made."),
                              messages.ERROR)
            return self._back(pin_enrollment)
        filename, data = wcd.project_zip(pin_enrollment, pin)
        AuditEvent.record(request.user, "pin_enrollment.project_downloaded", pin_enrollment, ip=client_ip(request))
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# Entra ID enrollment pages live in their own module.
from . import admin_entra  # noqa: E402,F401
