"""What an administrator needs to know of a device at a glance, as badges: enrolled, wipe pending, retire
pending, silent, or what ended its management. A wipe or an unenroll (retire) is pending from the moment
it is queued until the device answers it (MS-MDM: RemoteWipe CSP, DMClient CSP Unenroll): until then the
device is still enrolled, but about to leave, and the list and its page say so."""
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from enrollment.models import Device

from .actions import RETIRE_SOURCES, WIPE_ROOT, unenroll_target
from .models import DeviceCommand

# A device that has not checked in for this long is "silent" (Windows polls every 8 hours once enrolled).
SILENT_AFTER = timedelta(days=7)
PENDING_STATUSES = [DeviceCommand.Status.QUEUED, DeviceCommand.Status.SENT]


@dataclass(frozen=True)
class Badge:
    label: str
    kind: str  # ok, danger, warning, muted, progress: the badge-<kind> style of static/css/console.css
    title: str = ""


def pending_commands():
    """Commands not answered yet, of any device: OuterRef("pk") is the device."""
    return DeviceCommand.objects.filter(device=OuterRef("pk"), status__in=PENDING_STATUSES)


def retiring():
    """A retire: the console's or the API's, or any Unenroll of our provider (DMClient CSP)."""
    return Q(source__in=RETIRE_SOURCES) | Q(target=unenroll_target())


def with_wipe_pending(devices):
    return devices.annotate(wipe_pending=Exists(pending_commands().filter(target__startswith=WIPE_ROOT)))


def with_retire_pending(devices):
    return devices.annotate(retire_pending=Exists(pending_commands().filter(retiring())))


def with_pending_actions(devices):
    """`devices` (a queryset) annotated with wipe_pending and retire_pending, in the same SELECT."""
    return with_retire_pending(with_wipe_pending(devices))


def badges(device, now=None):
    """The device's badges, most important first. Reads wipe_pending and retire_pending from
    with_pending_actions() when present, else asks the database."""
    now = now or timezone.now()
    if device.status != Device.Status.ENROLLED:
        return [Badge(device.get_status_display(), "muted")]
    wipe = getattr(device, "wipe_pending", None)
    retire = getattr(device, "retire_pending", None)
    if wipe is None or retire is None:
        commands = DeviceCommand.objects.filter(device=device, status__in=PENDING_STATUSES)
        wipe = commands.filter(target__startswith=WIPE_ROOT).exists()
        retire = commands.filter(retiring()).exists()
    shown = []
    if wipe:
        shown.append(Badge(_("Wipe pending"), "danger", _("A wipe is queued: the device resets at its next check-in.")))
    elif retire:
        shown.append(Badge(_("Retire pending"), "warning",
                           _("An unenroll is queued: the device leaves management at its next check-in.")))
    else:
        shown.append(Badge(_("Enrolled"), "ok"))
    last = device.last_seen_at or device.enrolled_at
    if last is not None and now - last >= SILENT_AFTER:
        days = (now - last).days
        shown.append(Badge(_("Silent"), "muted", ngettext("No check-in for %(days)d day.",
                                                          "No check-in for %(days)d days.", days) % {"days": days}))
    if device.is_released_for_reenrollment:
        shown.append(Badge(_("Released"), "muted", _("The next enrollment of this hardware replaces it.")))
    return shown
