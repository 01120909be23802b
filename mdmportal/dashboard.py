"""The console's dashboard, assembled at the project floor (it reads every app's models): the figures an
administrator checks every morning, each a link to the list it counts, filtered to exactly those rows,
and charts of the fleet drawn as SVG on the server (mdmportal/charts.py).

Its queries do not grow with the fleet: one aggregate per table (and a grouped one for the enrollments
per day and the Windows releases), whatever the number of devices, invitations or commands.

Models are found by class name (`model_named`), so that a model moving between apps keeps its figure.
"""
from collections import Counter
from datetime import timedelta

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from accounts.models import AuditEvent, User
from enrollment import checkins
from enrollment.models import Device
from invitations.models import Invitation

from . import charts, windows_releases

DAYS = 30  # enrollments per day, over this many days
TOP = 8  # the most common releases and editions shown, the rest as "Other"
FAILED_COMMANDS_DAYS = 7
REFUSED_ENROLLMENT = "enrollment.refused"


def model_named(name):
    """The model class whose class name is `name`, wherever its app."""
    for model in apps.get_models():
        if model._meta.object_name == name:
            return model
    raise LookupError(name)


def _list_url(request, model, **params):
    """The model's console list filtered by `params`, or None when the user may not open it."""
    if not admin.site.is_registered(model):
        return None
    if not admin.site.get_model_admin(model).has_view_or_change_permission(request):
        return None
    url = reverse(admin_urlname(model._meta, "changelist"))
    return f"{url}?{urlencode(params)}" if params else url


def _card(card_id, figure, label, url):
    return {"id": card_id, "figure": figure, "label": label, "url": url}


def figures(request, now=None):
    """The dashboard's figures, in the order shown: [{"id", "figure", "label", "url"}], url None when the
    user may not open that list."""
    now = now or timezone.now()
    midnight = checkins.midnight(now)
    enrolled = Q(status=Device.Status.ENROLLED)
    devices = Device.objects.aggregate(
        enrolled=Count("pk", filter=enrolled),
        **{bucket: Count("pk", filter=enrolled & checkins.q(bucket, now))
           for bucket in [*dict(checkins.FRESHNESS), checkins.SILENT]})
    invitations = Invitation.objects.aggregate(
        pending=Count("pk", filter=Q(revoked_at__isnull=True, accepted_at__isnull=True, expires_at__gt=now)),
        failed=Count("pk", filter=Q(status=Invitation.Status.FAILED, expires_at__gt=now)))
    command = model_named("DeviceCommand")
    failed_commands = [command.Status.FAILED, command.Status.TIMED_OUT]
    since = now - timedelta(days=FAILED_COMMANDS_DAYS)
    enrollment = model_named("AutopilotEnrollment")
    esp_failed = [enrollment.EspState.FAILED, enrollment.EspState.TIMED_OUT]
    status_pages = enrollment.objects.aggregate(
        running=Count("pk", filter=Q(esp_state=enrollment.EspState.TRACKING)),
        failed=Count("pk", filter=Q(esp_state__in=esp_failed)))
    app_install = model_named("AppInstall")
    refused = AuditEvent.objects.filter(action=REFUSED_ENROLLMENT, created_at__gte=midnight).aggregate(
        attempts=Sum("count"))["attempts"] or 0
    enrolled_list = {"status__exact": Device.Status.ENROLLED}
    return [
        _card("card-users", User.objects.filter(is_staff=False).count(), _("Users"),
              _list_url(request, User, is_staff__exact=0)),
        _card("card-devices", devices["enrolled"], _("Enrolled devices"), _list_url(request, Device, **enrolled_list)),
        _card("card-checked-in-today", devices[checkins.TODAY], _("Checked in today"),
              _list_url(request, Device, **enrolled_list, checkin=checkins.TODAY)),
        _card("card-silent", devices[checkins.SILENT], _("Silent for 7 days"),
              _list_url(request, Device, **enrolled_list, checkin=checkins.SILENT)),
        _card("card-pending", invitations["pending"], _("Invitations pending"),
              _list_url(request, Invitation, status="pending")),
        _card("card-invitations-failed", invitations["failed"], _("Invitations failed"),
              _list_url(request, Invitation, status=Invitation.Status.FAILED)),
        _card("card-commands-failed",
              command.objects.filter(status__in=failed_commands, completed_at__gte=since).count(),
              _("Commands failed in the last 7 days"),
              _list_url(request, command, status__in=",".join(failed_commands), completed_at__gte=since.isoformat())),
        _card("card-status-pages-running", status_pages["running"], _("Status pages in progress"),
              _list_url(request, enrollment, esp_state__exact=enrollment.EspState.TRACKING)),
        _card("card-status-pages-failed", status_pages["failed"], _("Status pages failed"),
              _list_url(request, enrollment, esp_state__in=",".join(esp_failed))),
        _card("card-stalled-apps", app_install.objects.filter(app_install.stalled_q()).count(),
              _("Stalled app installs"), _list_url(request, app_install, stalled="yes")),
        {**_card("card-refused-enrollments", refused, _("Refused enrollment attempts today"),
                 # The audit log's own "Today" filter (its date filter's parameters, as it writes them).
                 _list_url(request, AuditEvent, action=REFUSED_ENROLLMENT, created_at__gte=str(midnight),
                           created_at__lt=str(midnight + timedelta(days=1)))),
         # Why they were refused, in plain words, with the code Windows showed (enrollment troubleshooting).
         "more_url": reverse("admin:enrollment_troubleshooting") if request.user.has_perm("enrollment.view_device")
         else None, "more_label": _("Why?")},
    ], devices


def _enrollments_per_day(now):
    today = timezone.localdate(now)
    first = today - timedelta(days=DAYS - 1)
    start = checkins.midnight(now) - timedelta(days=DAYS - 1)
    per_day = dict(Device.objects.filter(enrolled_at__gte=start)
                   .annotate(day=TruncDate("enrolled_at", tzinfo=timezone.get_current_timezone()))
                   .order_by().values_list("day").annotate(n=Count("pk")))
    days = [first + timedelta(days=i) for i in range(DAYS)]
    return [(formats.date_format(day, "j N"), per_day.get(day, 0)) for day in days]


def _top(counter):
    """The most common first (ties by name), the ones past TOP together as "Other"."""
    rows = sorted(counter.items(), key=lambda row: (-row[1], row[0]))
    if len(rows) > TOP:
        rows = rows[:TOP - 1] + [(_("Other"), sum(n for _name, n in rows[TOP - 1:]))]
    return rows


def chart_list(request, devices, now=None):
    """The dashboard's charts, as SVG; none for a user who may not view devices."""
    if not request.user.has_perm("enrollment.view_device"):
        return []
    now = now or timezone.now()
    releases, editions = Counter(), Counter()
    for os_version, os_edition, n in (Device.objects.enrolled().order_by().values_list("os_version", "os_edition")
                                      .annotate(n=Count("pk"))):
        releases[windows_releases.release_name(os_version, os_edition)] += n
        editions[windows_releases.edition_name(os_edition)] += n
    return [
        {"id": "chart-enrollments", "heading": _("Enrollments per day, last 30 days"),
         "svg": charts.columns("svg-enrollments", _("Enrollments per day over the last 30 days"),
                               _enrollments_per_day(now))},
        {"id": "chart-freshness", "heading": _("Last check-in of enrolled devices"),
         "svg": charts.bars("svg-freshness", _("Enrolled devices by last check-in"),
                            [(str(label), devices[bucket]) for bucket, label in checkins.FRESHNESS])},
        {"id": "chart-releases", "heading": _("Windows versions"),
         "svg": charts.bars("svg-releases", _("Enrolled devices by Windows version"), _top(releases))},
        {"id": "chart-editions", "heading": _("Windows editions"),
         "svg": charts.bars("svg-editions", _("Enrolled devices by Windows edition"), _top(editions))},
    ]
