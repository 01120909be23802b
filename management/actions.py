"""Device actions, called alike by the console and the API: each queues OMA-DM
commands through management.commands.queue() and is audited with who, what and from where.

Windows has no push here (WNS needs the internet), so a command reaches the device at its next poll:
the DMClient schedule of the provisioning document (`poll_schedule()`), or when the user presses
Sync, or at sign-in.

Retire (DMClient CSP, "Unenroll"): Exec ./Vendor/MSFT/DMClient/Provider/{ProviderID}/Unenroll with the
provider id as data. The device keeps checking in with its certificate until it has acknowledged the
command, so the record is retired and the certificate revoked only then (`finish_retirements`, run by
Celery beat every minute). Windows ignores the command for an "add work or school account"
registration and refuses it on an Entra-joined PC: those devices must be wiped instead, or retired
"now", which revokes the certificate at once and sends nothing (the device never hears of it and
keeps its local enrollment until it is reset or the user removes it).

Release for re-enrollment sends nothing: it lets the next enrollment of the device's hardware replace
it whoever enrolls (enrollment/reenrollment.py), for a PC handed to someone else. Without it, only the
device's own user or an enrollment proving the same hardware may replace it.
"""
import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent
from enrollment import provisioning_document
from enrollment.models import Device

from . import commands
from .models import DeviceCommand

logger = logging.getLogger(__name__)

SYNC_TARGET = "./DevDetail/SwV"
REBOOT_TARGET = "./Device/Vendor/MSFT/Reboot/RebootNow"
WIPE_ROOT = "./Device/Vendor/MSFT/RemoteWipe/"
# Autopilot Reset keeps the enrollment, so an acknowledged one does not make the device anyone's.
KEEPS_ENROLLMENT = WIPE_ROOT + "AutomaticRedeployment/"
# RemoteWipe CSP (remotewipe-csp): each is an Exec; 200 means "accepted", not "done".
WIPE_MODES = {
    "doWipe": _("Reset the device and remove all user data"),
    "doWipeProtected": _("Reset, removing user data; keeps trying after a power loss (can leave the device unbootable)"),
    "doWipePersistUserData": _("Reset, keeping user accounts and data"),
    "doWipePersistProvisionedData": _("Reset, keeping provisioning data (provisioning packages re-apply)"),
    "AutomaticRedeployment/doAutomaticRedeployment": _("Autopilot Reset: back to a business-ready state, enrollment kept"),
}
# Accounts CSP Domain/ComputerName supports Add only; on Windows 10 2004 (build 19041) and later the
# DevDetail CSP's Ext/Microsoft/DNSComputerName (Replace) is the node to use. Both need a reboot.
ACCOUNTS_COMPUTER_NAME = "./Device/Vendor/MSFT/Accounts/Domain/ComputerName"
DNS_COMPUTER_NAME = "./DevDetail/Ext/Microsoft/DNSComputerName"
DNS_COMPUTER_NAME_BUILD = 19041
NAME_MACRO = re.compile(r"%RAND:(\d{1,2})%|%SERIAL%")
RETIRE_SOURCES = ("console:retire", "api:retire")


class ActionRefused(Exception):
    """The action cannot run as asked; the message says why, in words for the administrator."""


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    permission: str
    help: str
    single_device: bool = False  # offered on a device page only, not on a selection
    records_only: bool = False  # changes our record of the device and sends it nothing


ACTIONS = {a.name: a for a in [
    Action("sync", _("Sync now"), "enrollment.change_device",
           _("Queues a harmless Get, which makes the device's next check-in show it is alive and delivers "
             "anything else waiting.")),
    Action("reboot", _("Reboot"), "enrollment.change_device",
           _("Restarts the device at once when it receives the command.")),
    Action("rename", _("Rename"), "enrollment.change_device",
           _("Sets the computer name; it takes effect after the next restart."), single_device=True),
    Action("wipe", _("Wipe"), "enrollment.wipe_device",
           _("Resets the device. It cannot be undone; the device leaves management unless the mode chosen keeps "
             "its enrollment (Autopilot Reset).")),
    Action("retire", _("Retire"), "enrollment.retire_device",
           _("Removes management from the device and revokes its certificate.")),
    Action("custom", _("Custom command"), "enrollment.send_custom_command",
           _("Sends any Get, Replace, Add, Delete or Exec to a LocURI."), single_device=True),
    Action("release", _("Release for re-enrollment"), "enrollment.release_device",
           _("Lets the next enrollment of this hardware replace the device whoever enrolls it (a PC handed to "
             "someone else). Nothing is sent; the device stays managed until that enrollment revokes its "
             "certificate."), records_only=True),
]}


@dataclass
class Report:
    """What an action did: a command per device that got one, and the devices skipped with why."""

    action: str
    queued: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (device, reason)
    retired: list = field(default_factory=list)
    released: list = field(default_factory=list)

    @property
    def devices(self):
        return len(self.queued) + len(self.skipped)


def poll_schedule():
    """The DMClient poll schedule we provision, in words (provisioning_document.POLL_SCHEDULE)."""
    values = {name: value for name, value, _ in provisioning_document.POLL_SCHEDULE}
    first, second = int(values["NumberOfFirstRetries"]), int(values["NumberOfSecondRetries"])
    remaining = int(values["NumberOfRemainingScheduledRetries"])
    words = {"first_interval": values["IntervalForFirstSetOfRetries"], "first": first,
             "second_interval": values["IntervalForSecondSetOfRetries"], "second": second,
             "hours": int(values["IntervalForRemainingScheduledRetries"]) // 60, "remaining": remaining}
    if remaining == 0:
        return _("every %(first_interval)s minutes %(first)d times after enrollment, then every %(second_interval)s "
                 "minutes %(second)d times, then every %(hours)d hours, and at each sign-in") % words
    return _("every %(first_interval)s minutes %(first)d times after enrollment, then every %(second_interval)s "
             "minutes %(second)d times, then every %(hours)d hours %(remaining)d times, and at each sign-in") % words


def wipe_confirmation(devices):
    """What the administrator must type to wipe `devices`: the device's name, or the count."""
    devices = list(devices)
    return str(devices[0]) if len(devices) == 1 else str(len(devices))


def check_wipe(devices, confirmation, mode):
    devices = list(devices)
    limit = settings.ENROLLMENT_WIPE_LIMIT
    if len(devices) > limit:
        raise ActionRefused(_("Wiping %(count)d devices at once is over the wipe limit of %(limit)d devices per "
                              "action (setting ENROLLMENT_WIPE_LIMIT). Select fewer devices.")
                            % {"count": len(devices), "limit": limit})
    if mode not in WIPE_MODES:
        raise ActionRefused(_("Unknown wipe mode %(mode)s.") % {"mode": repr(mode)})
    expected = wipe_confirmation(devices)
    if (confirmation or "").strip() != expected:
        if len(devices) == 1:
            raise ActionRefused(_("Type the device name, %(expected)s, to confirm the wipe.") % {"expected": expected})
        raise ActionRefused(_("Type the number of devices, %(expected)s, to confirm the wipe.") % {"expected": expected})


def check_computer_name(name):
    """NetBIOS rules for a Windows computer name (Accounts CSP): 1 to 15 characters, letters, digits and
    hyphens, not only digits, no hyphen at either end. %RAND:n% and %SERIAL% are expanded by Windows,
    which cuts the serial to fit."""
    literal = NAME_MACRO.sub("", name)
    length = len(literal) + sum(int(m.group(1)) for m in NAME_MACRO.finditer(name) if m.group(1))
    if not name:
        raise ActionRefused(_("Type the new computer name."))
    if not re.fullmatch(r"[A-Za-z0-9-]*", literal):
        raise ActionRefused(_("A computer name has only letters, digits and hyphens (no spaces, dots or other "
                              "characters), plus the macros %RAND:n% and %SERIAL%."))
    if length > 15:
        raise ActionRefused(_("A computer name has at most 15 characters; this one has %(length)d.") % {"length": length})
    if name.isdigit():
        raise ActionRefused(_("A computer name cannot be only digits."))
    if name.startswith("-") or name.endswith("-"):
        raise ActionRefused(_("A computer name cannot start or end with a hyphen."))


def rename_command(device, name):
    """(verb, LocURI) renaming `device`, by its Windows build."""
    build = device.os_version.split(".")
    if len(build) >= 3 and build[2].isdigit() and int(build[2]) >= DNS_COMPUTER_NAME_BUILD:
        return DeviceCommand.Verb.REPLACE, DNS_COMPUTER_NAME
    return DeviceCommand.Verb.ADD, ACCOUNTS_COMPUTER_NAME


def unenroll_target():
    return f"./Vendor/MSFT/DMClient/Provider/{settings.ENROLLMENT_PROVIDER_ID}/Unenroll"


def run(name, devices, actor, /, *, ip=None, via="console", **params):
    """Run action `name` on `devices` for `actor` (who must hold its permission). Raises ActionRefused
    before anything is queued when the request itself is wrong; devices that can no longer be
    managed are skipped, each with its reason. All or nothing: one transaction."""
    action = ACTIONS.get(name)
    if action is None:
        raise ActionRefused(_("Unknown action %(name)s.") % {"name": repr(name)})
    if not actor.has_perm(action.permission):
        raise PermissionDenied(f"{action.label} needs the permission {action.permission}.")
    devices = list(devices)
    if not devices:
        raise ActionRefused(_("Select at least one device."))
    if action.single_device and len(devices) != 1:
        raise ActionRefused(_("%(action)s applies to one device at a time.") % {"action": action.label})
    plan = PLANS[name](devices, **params)
    report = Report(name)
    source = f"{via}:{name}"
    with transaction.atomic():
        for device in devices:
            if name == "retire" and params.get("immediately"):
                _retire_now(device, actor, ip, via, report)
                continue
            if name == "release":
                _release_now(device, actor, ip, via, report)
                continue
            queued = []
            try:
                for verb, target, format, data, type in plan(device):
                    queued.append(commands.queue(device, verb, target, format=format, data=data, type=type,
                                                 actor=actor, source=source))
            except commands.CommandError as error:
                report.skipped.append((device, str(error)))
                continue
            report.queued.extend(queued)
            AuditEvent.record(actor, f"device.{name}", device, ip=ip, detail={
                "via": via, "commands": [c.pk for c in queued],
                "what": [f"{c.verb} {c.target}" for c in queued], **_audited(params)})
    logger.info("action %s by %s: %s commands, %s skipped", name, actor, len(report.queued), len(report.skipped))
    return report


def _audited(params):
    detail = {k: v for k, v in params.items() if k not in ("confirmation", "data")}
    if params.get("data"):
        detail["data"] = params["data"][:200]
    return detail


def wiped(old, context_items):
    """"wiped" when the device acknowledged a wipe that takes it out of management (RemoteWipe CSP): it
    can no longer be anyone's, so a new enrollment of its hardware may replace it (a hardware proof for
    enrollment.reenrollment)."""
    acknowledged = (old.commands.filter(verb=DeviceCommand.Verb.EXEC, target__startswith=WIPE_ROOT,
                                        status=DeviceCommand.Status.SUCCEEDED)
                    .exclude(target__startswith=KEEPS_ENROLLMENT).exists())
    return "wiped" if acknowledged else ""


def _retire_now(device, actor, ip, via, report):
    if device.status != Device.Status.ENROLLED:
        report.skipped.append((device, _("The device is %(status)s.") % {"status": device.get_status_display().lower()}))
        return
    device.mark_retired()
    report.retired.append(device)
    AuditEvent.record(actor, "device.retire", device, ip=ip, detail={
        "via": via, "immediately": True, "certificate": device.certificate_serial,
        "note": "Retired without an unenroll command: the device keeps its local enrollment"})


def _release_now(device, actor, ip, via, report):
    """Re-enrollment by another user (enrollment/reenrollment.py) needs the device released first:
    the DeviceID and HWDevID a client sends prove nothing, an administrator's decision does."""
    device = Device.objects.select_for_update().get(pk=device.pk)
    if device.status != Device.Status.ENROLLED:
        report.skipped.append((device, _("The device is %(status)s.") % {"status": device.get_status_display().lower()}))
        return
    if device.is_released_for_reenrollment:
        report.skipped.append((device, _("The device is already released for re-enrollment.")))
        return
    device.release_for_reenrollment(actor)
    report.released.append(device)
    AuditEvent.record(actor, "device.release", device, ip=ip, detail={
        "via": via, "user": device.user_id, "certificate": device.certificate_serial})


# -- what each action sends: a function checking the parameters once, returning one that gives the
#    (verb, target, format, data, type) commands for a device.

def _sync(devices):
    return lambda device: [(DeviceCommand.Verb.GET, SYNC_TARGET, "", "", "")]


def _reboot(devices):
    return lambda device: [(DeviceCommand.Verb.EXEC, REBOOT_TARGET, "null", "", "")]


def _wipe(devices, *, mode="doWipe", confirmation=""):
    check_wipe(devices, confirmation, mode)
    return lambda device: [(DeviceCommand.Verb.EXEC, WIPE_ROOT + mode, "null", "", "")]


def _retire(devices, *, immediately=False):
    provider = settings.ENROLLMENT_PROVIDER_ID
    return lambda device: [(DeviceCommand.Verb.EXEC, unenroll_target(), "chr", provider, "")]


def _rename(devices, *, name="", reboot=False):
    check_computer_name(name)

    def plan(device):
        verb, target = rename_command(device, name)
        steps = [(verb, target, "chr", name, "")]
        if reboot:
            steps.append((DeviceCommand.Verb.EXEC, REBOOT_TARGET, "null", "", ""))
        return steps
    return plan


def _custom(devices, *, verb="", target="", format="", data="", type=""):
    try:
        commands.validate(verb, target, format, data, type)
    except commands.CommandError as error:
        raise ActionRefused(str(error)) from None
    return lambda device: [(verb, target, format, data, type)]


def _no_commands(devices):
    return lambda device: []


PLANS = {"sync": _sync, "reboot": _reboot, "wipe": _wipe, "retire": _retire, "rename": _rename, "custom": _custom,
         "release": _no_commands}


def finish_retirements():
    """Retire every device that acknowledged an Unenroll: revoke its certificate, close its queue."""
    acknowledged = (DeviceCommand.objects.filter(source__in=RETIRE_SOURCES, status=DeviceCommand.Status.SUCCEEDED,
                                                 device__status=Device.Status.ENROLLED)
                    .select_related("device", "queued_by"))
    retired = 0
    for command in acknowledged:
        with transaction.atomic():
            device = Device.objects.select_for_update().get(pk=command.device_id)
            if device.status != Device.Status.ENROLLED:
                continue
            device.mark_retired()
            AuditEvent.record(command.queued_by, "device.retired", device, detail={
                "command": command.pk, "status_code": command.status_code, "certificate": device.certificate_serial})
            retired += 1
    return retired
