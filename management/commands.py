"""The per-device OMA-DM command queue.

Everyone who wants something done on a device (console actions, policies, inventory) calls queue();
management/omadm.py delivers the queue at the device's next check-in, in sequence (pk) order, and
closes each command with the device's Status. Lifecycle:

    queued ──sent in a session──▶ sent ──device Status 2xx──▶ succeeded
       │                           │    └─other Status──────▶ failed
       │                           └─no Status in its session: back to queued, at most
       │                             ENROLLMENT_COMMAND_MAX_ATTEMPTS sends in all, then failed
       ├─expires_at passed (queued or sent) ──▶ timed_out
       └─cancel() ──▶ cancelled

A command acknowledged by the device is final and never sent again.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from invitations.models import InvalidTransition

from .models import DeviceCommand

logger = logging.getLogger(__name__)

# Meta/Format values Windows accepts (OMA DM 1.2 RepPro, Meta/Format; MS-MDM).
# During the account setup of OOBE, until the signed-in user's MDM context exists, Windows answers 405
# (Command not allowed) to every command under ./User/ (DMClient CSP, FirstSyncStatus in the user
# scope): such an answer means "not yet", and whoever queued the command may send it again later.
USER_SCOPE = "./User/"
COMMAND_NOT_ALLOWED = 405
FORMATS = ("chr", "int", "bool", "b64", "xml", "node", "null", "bin", "float", "date", "time")
MAX_TARGET = 1024
MAX_DATA = 256 * 1024


class CommandError(ValueError):
    """The command cannot be sent to a Windows device as given; the message says why."""


def validate(verb, target, format="", data="", type=""):
    """OMA DM 1.2 RepPro and MS-MDM: a known verb, a relative LocURI ("./…", never "/…"), a listed format."""
    if verb not in DeviceCommand.Verb.values:
        raise CommandError(f"Unknown verb {verb!r}: use one of {', '.join(DeviceCommand.Verb.values)}.")
    if not target or target != target.strip() or len(target) > MAX_TARGET:
        raise CommandError("The LocURI must be 1 to 1024 characters without surrounding spaces.")
    if target.startswith("/"):
        raise CommandError("A LocURI never starts with '/': write ./Device/Vendor/MSFT/… or ./Vendor/MSFT/….")
    if not target.startswith("./") or any(not c.isprintable() for c in target) or "//" in target:
        raise CommandError("The LocURI must start with './' and name one node (no empty segments).")
    if format and format not in FORMATS:
        raise CommandError(f"Unknown format {format!r}: use one of {', '.join(FORMATS)}.")
    if verb == DeviceCommand.Verb.GET and (data or format):
        raise CommandError("A Get carries no format or data.")
    if len(data) > MAX_DATA:
        raise CommandError(f"The data is larger than {MAX_DATA} characters.")
    if len(type) > 255:
        raise CommandError("The type is longer than 255 characters.")


def queue(device, verb, target, *, format="", data="", type="", actor=None, source="", expires_in=None):
    """Add a command at the end of `device`'s queue. `expires_in` (a timedelta) defaults to
    ENROLLMENT_COMMAND_TTL_DAYS. Raises CommandError for a malformed command or a device that can no
    longer be managed."""
    validate(verb, target, format, data, type)
    if device.status != device.Status.ENROLLED:
        raise CommandError(f"The device is {device.get_status_display().lower()}: it no longer checks in.")
    if expires_in is None:
        expires_in = timedelta(days=settings.ENROLLMENT_COMMAND_TTL_DAYS)
    now = timezone.now()
    command = DeviceCommand.objects.create(
        device=device, verb=verb, target=target, format=format, data=data, type=type,
        queued_by=actor if getattr(actor, "is_authenticated", False) else None,
        source=source[:100], created_at=now, expires_at=now + expires_in,
    )
    logger.info("queued command %s %s %s for device %s (%s)", command.pk, verb, target, device.pk, source)
    return command


def user_context_missing(command):
    """True for a ./User/ command the device answered 405: the user's MDM context did not exist yet."""
    return (command is not None and command.status == DeviceCommand.Status.FAILED
            and command.status_code == COMMAND_NOT_ALLOWED and command.target.startswith(USER_SCOPE))


def resend(device, command, *, actor=None):
    """Queue `command` of `device` again, as a new command at the end of the queue (the answered one
    stays as it was, with the device's Status). Raises CommandError as queue() does."""
    return queue(device, command.verb, command.target, format=command.format, data=command.data,
                 type=command.type, actor=actor, source=command.source)


def cancel(command, actor=None, *, ip=None):
    """Withdraw a command the device has not been sent yet; raises InvalidTransition otherwise."""
    with transaction.atomic():
        # Locked so that a check-in picking the command at the same moment either sends it or not.
        locked = DeviceCommand.objects.select_for_update().get(pk=command.pk)
        locked.cancel()
        AuditEvent.record(actor, "device.command_cancelled", locked.device, ip=ip,
                          detail={"command": locked.pk, "verb": locked.verb, "target": locked.target})
    command.refresh_from_db()
    return command


def close_queue(sender, device, note="", **kwargs):
    """The device's enrollment ended (enrollment.signals.enrollment_ended: its user unenrolled it, or it
    was retired): what is still pending for it is cancelled, at the moment it left."""
    changes = {"note": note} if note else {}
    device.commands.pending().update(status=DeviceCommand.Status.CANCELLED, completed_at=device.unenrolled_at,
                                     **changes)


def expire_overdue(device=None, now=None):
    """Time out pending commands past their expiry (all devices, or one). Returns how many."""
    now = now or timezone.now()
    overdue = DeviceCommand.objects.pending().filter(expires_at__lte=now)
    if device is not None:
        overdue = overdue.filter(device=device)
    count = overdue.update(status=DeviceCommand.Status.TIMED_OUT, completed_at=now,
                           note="Not acknowledged before it expired")
    if count:
        logger.info("timed out %s commands", count)
    return count


__all__ = ["CommandError", "InvalidTransition", "cancel", "expire_overdue", "queue", "resend", "user_context_missing",
           "validate"]
