"""The console's enrollment troubleshooting pages: the refused enrollment attempts of a user, of a
device, and of everyone (enrollment/troubleshooting.py reads and explains them). For whoever may view
devices (the helpdesk included); read-only."""
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import AccountLockout, AuditEvent

from . import troubleshooting
from .models import Device


class TroubleshootingMixin:
    """URLs of the troubleshooting pages, on the device list's admin (they are about devices enrolling)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("troubleshooting/", view(self.troubleshooting_view), name="enrollment_troubleshooting"),
            path("troubleshooting/user/<int:user_pk>/", view(self.user_troubleshooting_view),
                 name="enrollment_user_troubleshooting"),
            path("<int:pk>/troubleshooting/", view(self.device_troubleshooting_view),
                 name="enrollment_device_troubleshooting"),
        ] + super().get_urls()

    def _page(self, request, title, attempts, **context):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(request, "admin/enrollment/troubleshooting.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "attempts": attempts,
            "listed": troubleshooting.LISTED,
            **context,
        })

    def troubleshooting_view(self, request):
        events = AuditEvent.objects.filter(action=troubleshooting.REFUSED).order_by("-created_at", "-pk")
        return self._page(request, _("Refused enrollments"),
                          [troubleshooting.describe(event) for event in events[:troubleshooting.LISTED]],
                          everyone=True)

    def user_troubleshooting_view(self, request, user_pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        subject = get_object_or_404(get_user_model(), pk=user_pk)
        lockout = AccountLockout.objects.filter(account=subject.email, locked_until__gt=timezone.now()).first()
        return self._page(request, _("Enrollment troubleshooting: %(user)s") % {"user": subject.email},
                          troubleshooting.attempts_for_user(subject), subject_user=subject, lockout=lockout,
                          devices=Device.objects.filter(user=subject).order_by("-enrolled_at")[:10])

    def device_troubleshooting_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        device = get_object_or_404(Device.objects.select_related("user"), pk=pk)
        return self._page(request, _("Enrollment troubleshooting: %(device)s") % {"device": device},
                          troubleshooting.attempts_for_device(device), subject_device=device)


DEVICES_SHOWN = 5


def user_summary_section(user, request):
    """The user's devices and enrollment troubleshooting on their console page (invitations/user_summary.py):
    three queries whatever the number of devices and attempts."""
    if not request.user.has_perm("enrollment.view_device"):
        return None
    devices = list(Device.objects.filter(user=user).order_by("-enrolled_at", "-pk")[:DEVICES_SHOWN + 1])
    enrolled = Device.objects.filter(user=user).enrolled().count()
    refused = AuditEvent.objects.filter(target_type=user._meta.label, target_id=str(user.pk),
                                        action=troubleshooting.REFUSED).count()
    listing = "; ".join(_device_line(device) for device in devices[:DEVICES_SHOWN]) or "—"
    devices_url = reverse("admin:enrollment_device_changelist") + f"?user__id__exact={user.pk}"
    troubleshooting_url = reverse("admin:enrollment_user_troubleshooting", args=[user.pk])
    return {
        "id": "user-devices",
        "title": _("Devices and enrollment"),
        "rows": [
            (_("Devices"), (ngettext("%(count)d device enrolled of %(limit)d allowed",
                                     "%(count)d devices enrolled of %(limit)d allowed", enrolled)
                            % {"count": enrolled, "limit": user.device_limit}) + f": {listing}"),
            (_("Refused enrollments"), str(refused)),
        ],
        "links": [(devices_url, _("All devices of this user")), (troubleshooting_url, _("Enrollment troubleshooting"))],
    }


def _device_line(device):
    if device.last_seen_at is None:
        return f"{device} ({device.get_status_display()})"
    return _("%(device)s (%(status)s, last seen %(when)s)") % {
        "device": device, "status": device.get_status_display(),
        "when": date_format(timezone.localtime(device.last_seen_at), "SHORT_DATETIME_FORMAT")}
