"""Recognising an Autopilot device: at its enrollment, then at its first OMA-DM session.

At enrollment, Windows adds to the request (RST AdditionalContext, MS-MDE2's implementation-specific
items) `ZeroTouchProvisioning`, the device's ZTD id in Microsoft's Autopilot service, or, for an offline
profile file (AutopilotConfigurationFile.json), `OfflineAutoPilotEnrollmentCorrelator`, that file's
ZtdCorrelationId. The record is found by ZTD id; the correlator names the profile Windows set itself up
with. The request carries neither the serial number nor the hardware hash.

Those the server reads at the device's first OMA-DM session (management/inventory.py, which sends the
two Gets first when Autopilot records exist and the device has no record yet): DevDetail CSP
./DevDetail/Ext/Microsoft/SMBIOSSerialNumber and ./DevDetail/Ext/DeviceHardwareData. When the device's
next message brings the Results, the record is found by hardware hash, then by serial number (never a
placeholder one), and the profile is applied at once (autopilot/status_page.py): the device joins the
profile's configuration groups, and the same session's next reply brings the Enrollment Status Page,
TenantLockdown, the essential apps and the groups' settings. A device linked by its correlator alone
gets its record then, keeping the profile of its file. Values read again later (the periodic inventory)
never link a device: recognition belongs to the first session, before anyone uses the PC.

What a match gives depends on what it proves (OWASP ASVS V4, access control: decide from what the
caller proved, not from identifiers it sent). The hardware hash names one PC, the ZTD id is the one
Microsoft's Autopilot service gave that hardware and the offline file's correlator is what the
administrator put on it: those give the record's profile and its assigned user. A serial number is
printed on the box and on invoices, so anyone can report it: a match by serial number alone gives the
record's profile only, never its assigned user, and only while no other live enrollment holds the
record. A record held by a live enrollment is never taken by a serial number; a proven match takes it
only from an enrollment that holds it by serial number alone (which keeps the profile it was given).
Otherwise it moves to other hardware only once enrollment replaced the holder (enrollment/
reenrollment.py: its hardware hash in the request, its wipe, or an administrator's release). A refusal
is audited as `autopilot.match_refused`.
"""
import logging
import uuid

from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction

from accounts.models import AuditEvent
from management.commands import CommandError
from enrollment.models import Device

from . import status_page
from .assignment import effective_profile
from .imports import hardware_hash_digest, is_placeholder_serial, serial_key
from .models import AutopilotDevice, AutopilotEnrollment, Profile

logger = logging.getLogger(__name__)

ZTD_ITEM = "ZeroTouchProvisioning"
CORRELATOR_ITEM = "OfflineAutoPilotEnrollmentCorrelator"
# Only a client of its own sends this in the request (Windows does not); see hardware_hash_proof.
HARDWARE_ITEM = "DeviceHardwareData"
# The matches that prove the hardware, and so give the record's assigned user (see the module's doc).
PROVEN = frozenset({AutopilotEnrollment.MatchedBy.HARDWARE_HASH, AutopilotEnrollment.MatchedBy.ZTD_ID,
                    AutopilotEnrollment.MatchedBy.CORRELATOR})
SERIAL_NODE = "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber"
HARDWARE_NODE = "./DevDetail/Ext/DeviceHardwareData"


def _item(context_items, name):
    """First non-empty value of a context item (names are case-sensitive, as Windows sends them)."""
    return next(((value or "").strip() for item_name, value in context_items
                 if item_name == name and (value or "").strip()), "")


def record_by_ztd_id(context_items):
    ztd_id = _item(context_items, ZTD_ITEM)
    return AutopilotDevice.objects.filter(ztd_id__iexact=ztd_id[:64]).first() if ztd_id else None


def record_by_hardware(serial, hardware):
    """(AutopilotDevice, how) for the serial number and hardware hash a device reported, or (None, None).
    The hash first: it names one PC, while a serial number is printed on its box."""
    digest = hardware_hash_digest(hardware) if hardware else None
    if digest:
        record = AutopilotDevice.objects.filter(hardware_hash_digest=digest).first()
        if record:
            return record, AutopilotEnrollment.MatchedBy.HARDWARE_HASH
    if serial and not is_placeholder_serial(serial):
        record = AutopilotDevice.objects.filter(serial_key=serial_key(serial)[:64]).first()
        if record:
            return record, AutopilotEnrollment.MatchedBy.SERIAL
    return None, None


def offline_correlator(context_items):
    """The correlator of the offline profile file the device set itself up with, as the request carried
    it (the file's ZtdCorrelationId), or ""."""
    return _item(context_items, CORRELATOR_ITEM)


def offline_profile(correlator):
    """The profile whose offline file carried `correlator` (offline_correlator), or None."""
    try:
        correlation_id = uuid.UUID(correlator.strip("{}"))
    except ValueError:
        return None
    return Profile.objects.filter(ztd_correlation_id=correlation_id).first()


def hardware_hash_proof(old_device, context_items):
    """Re-enrollment proof (enrollment/reenrollment.py): the request carries the hardware hash of the
    imported record `old_device` was linked to, so it comes from that hardware, whoever signs in (an
    Autopilot device re-deployed to another user). A ZTD id or serial number is no proof: both are
    printed on the box or readable by anyone. Windows itself does not put the hash in its request, so
    for a Windows PC this proof never applies (its wipe or an administrator's release does). Returns
    the reason, or ""."""
    hardware = _item(context_items, HARDWARE_ITEM)
    digest = hardware_hash_digest(hardware) if hardware else None
    if digest and AutopilotEnrollment.objects.filter(device=old_device, record__hardware_hash_digest=digest).exists():
        return "Autopilot record matched by hardware hash"
    return ""


def link_enrolled_device(device, context_items):
    """The enrollment hook (enrollment/wstep.py): link a freshly enrolled Device by its ZTD id or offline
    correlator. Returns the AutopilotEnrollment, or None. Never raises for a database problem: the
    enrollment itself has succeeded and must not turn into an error."""
    context_items = context_items or []
    return _safely(device, lambda: _link_at_enrollment(device, context_items))


def wants_hardware(device):
    """The inventory hook (management/inventory.py): the nodes to read first at the device's first
    session: none when no record was imported or the device already has its record."""
    if not AutopilotDevice.objects.exists():
        return []
    if AutopilotEnrollment.objects.filter(device=device, record__isnull=False).exists():
        return []
    return [SERIAL_NODE, HARDWARE_NODE]


def recognise(device, values, now):
    """The inventory hook for values read for the first time: link `device` by the serial number and
    hardware hash it reported, unless it has its record already. Returns the AutopilotEnrollment, or
    None; never raises for a database problem (the session goes on)."""
    serial, hardware = (values.get(node, "").strip() for node in (SERIAL_NODE, HARDWARE_NODE))
    if not (serial or hardware):
        return None
    return _safely(device, lambda: _link_by_hardware(device, serial, hardware, now))


def _safely(device, link):
    try:
        with transaction.atomic():
            return link()
    except (DatabaseError, CommandError):
        logger.exception("Autopilot: could not link device %s to its record", device.pk)
        return None


def _link_at_enrollment(device, context_items):
    record = record_by_ztd_id(context_items)
    correlator = offline_correlator(context_items)
    profile = offline_profile(correlator)
    if record is not None and not _may_take(device, record, AutopilotEnrollment.MatchedBy.ZTD_ID):
        record = None
    if record is None and profile is None:
        return None
    if profile is not None:
        matched_by = AutopilotEnrollment.MatchedBy.ZTD_ID if record else AutopilotEnrollment.MatchedBy.CORRELATOR
        reason = f"offline profile file of {profile.name}"
    else:
        matched_by = AutopilotEnrollment.MatchedBy.ZTD_ID
        assignment = effective_profile(record)
        profile, reason = assignment.profile, assignment.reason
    return _link(device, record, matched_by, profile, reason, correlator)


def _link_by_hardware(device, serial, hardware, now):
    existing = AutopilotEnrollment.objects.select_for_update().filter(device=device).first()
    if existing is not None and existing.record_id is not None:
        return None
    record, matched_by = record_by_hardware(serial, hardware)
    if record is None or not _may_take(device, record, matched_by):
        return None
    if existing is not None:
        existing.device = device
        # Linked by its offline file's correlator: the record joins, the file's profile stays applied.
        existing.record, existing.matched_by = record, matched_by
        existing.user_applied, user_note = _apply_user(device, record, matched_by)
        existing.save(update_fields=["record", "matched_by", "user_applied"])
        _audit(existing, user_note)
        return existing
    assignment = effective_profile(record)
    link = _link(device, record, matched_by, assignment.profile, assignment.reason, "")
    # Its first session is under way: the status page's clock starts now (as at a session's start).
    status_page.checked_in(device, now)
    return link


def _may_take(device, record, matched_by):
    """Whether `device`, matched to `record` by `matched_by`, may be linked to it: yes when no other
    live enrollment holds the record, or when the match proves the hardware and the holder was linked
    by serial number alone (the holder then keeps its profile, not the record). Otherwise the refusal
    is audited and the answer is no."""
    # Locks the record: two first sessions naming it at once are linked one after the other.
    AutopilotDevice.objects.select_for_update().filter(pk=record.pk).first()
    holder = (AutopilotEnrollment.objects.select_for_update().select_related("device")
              .filter(record=record, device__status=Device.Status.ENROLLED).exclude(device=device)
              .order_by("pk").first())
    if holder is None:
        return True
    if matched_by in PROVEN and holder.matched_by == AutopilotEnrollment.MatchedBy.SERIAL:
        holder.record = None
        holder.save(update_fields=["record"])
        AuditEvent.record(None, "autopilot.record_reclaimed", holder.device, detail={
            "record": record.serial_number, "by_device": device.pk, "matched_by": matched_by,
            "reason": "this device held the record by its serial number alone; the other proved the hardware",
        })
        return True
    if matched_by == AutopilotEnrollment.MatchedBy.SERIAL:
        reason = ("the record is held by another live device, and a serial number, printed on the box and on "
                  "invoices, is no proof of the hardware")
    else:
        reason = (f"the record is held by another live device (matched by {holder.matched_by}); it moves to "
                  "other hardware only once an enrollment replaced that device (its hardware hash in the "
                  "enrollment request, its wipe, or an administrator's release for re-enrollment)")
    AuditEvent.record(None, "autopilot.match_refused", device, detail={
        "record": record.serial_number, "matched_by": matched_by, "linked_device": holder.device_id,
        "reason": reason,
    })
    return False


def _link(device, record, matched_by, profile, reason, correlator):
    user_applied, user_note = _apply_user(device, record, matched_by)
    link, _ = AutopilotEnrollment.objects.update_or_create(device=device, defaults={
        "record": record, "matched_by": matched_by, "profile": profile, "profile_reason": reason[:255],
        "correlation_id": correlator[:64], "user_applied": user_applied,
    })
    _audit(link, user_note)
    return status_page.apply(link)


def _audit(link, user_note):
    record, profile = link.record, link.profile
    AuditEvent.record(None, "autopilot.enrollment_linked", link.device, detail={
        "record": record.serial_number if record else None, "matched_by": link.matched_by,
        "profile": profile.name if profile else None, "reason": link.profile_reason,
        "user_applied": link.user_applied, "user": user_note,
    })


def _apply_user(device, record, matched_by):
    """Make the record's assigned user the device's user when the match proves the hardware.
    Returns (applied, why) for the audit."""
    if record is None or not record.assigned_user:
        return False, "no assigned user"
    if matched_by not in PROVEN:
        return False, ("not applied: matched by serial number alone, which anyone can report "
                       "(it is printed on the box and on invoices)")
    if device.user_id is not None:
        return False, "not applied: the device has a user of its own"
    user = get_user_model().objects.filter(email__iexact=record.assigned_user, is_active=True).first()
    if user is None:
        return False, "not applied: no active user has the assigned user's address"
    device.user = user
    device.save(update_fields=["user"])
    return True, f"applied: matched by {matched_by}"
