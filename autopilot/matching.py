"""Recognising an Autopilot device when it enrolls (brief §9).

Windows adds to the enrollment request (RST AdditionalContext) `ZeroTouchProvisioning` (the device's
ZTD id in Microsoft's Autopilot service) or, for an offline profile file,
`OfflineAutoPilotEnrollmentCorrelator` (that file's ZtdCorrelationId). The imported record is found by
ZTD id, then by serial number (never a placeholder one), then by hardware hash; the correlator names
the profile Windows set itself up with.

The link records the profile and applies it at once (autopilot/provisioning.py): the device joins the
profile's configuration groups, and its first OMA-DM session brings the Enrollment Status Page,
TenantLockdown, the essential apps and the groups' settings.
"""
import logging
import uuid

from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction

from enrollment.commands import CommandError
from invitations.models import AuditEvent

from . import provisioning
from .assignment import effective_profile
from .imports import hardware_hash_digest, is_placeholder_serial, serial_key
from .models import AutopilotDevice, AutopilotEnrollment, Profile

logger = logging.getLogger(__name__)

ZTD_ITEM = "ZeroTouchProvisioning"
CORRELATOR_ITEM = "OfflineAutoPilotEnrollmentCorrelator"
SERIAL_ITEM = "SMBIOSSerialNumber"
HARDWARE_ITEM = "DeviceHardwareData"


def _item(context_items, name):
    """First non-empty value of a context item (names are case-sensitive, brief §5)."""
    return next(((value or "").strip() for item_name, value in context_items
                 if item_name == name and (value or "").strip()), "")


def find_record(context_items):
    """(AutopilotDevice, how) or (None, None)."""
    ztd_id = _item(context_items, ZTD_ITEM)
    if ztd_id:
        record = AutopilotDevice.objects.filter(ztd_id__iexact=ztd_id[:64]).first()
        if record:
            return record, AutopilotEnrollment.MatchedBy.ZTD_ID
    serial = _item(context_items, SERIAL_ITEM)
    if serial and not is_placeholder_serial(serial):
        record = AutopilotDevice.objects.filter(serial_key=serial_key(serial)[:64]).first()
        if record:
            return record, AutopilotEnrollment.MatchedBy.SERIAL
    hardware = _item(context_items, HARDWARE_ITEM)
    digest = hardware_hash_digest(hardware) if hardware else None
    if digest:
        record = AutopilotDevice.objects.filter(hardware_hash_digest=digest).first()
        if record:
            return record, AutopilotEnrollment.MatchedBy.HARDWARE_HASH
    return None, None


def offline_profile(context_items):
    """The profile whose offline file carried this correlator, or None."""
    correlator = _item(context_items, CORRELATOR_ITEM)
    try:
        correlation_id = uuid.UUID(correlator.strip("{}"))
    except ValueError:
        return None, correlator
    return Profile.objects.filter(ztd_correlation_id=correlation_id).first(), correlator


def hardware_hash_proof(old_device, context_items):
    """Re-enrollment proof (enrollment/reenrollment.py): the request carries the hardware hash of the
    imported record `old_device` was linked to, so it comes from that hardware, whoever signs in (an
    Autopilot device re-deployed to another user). A ZTD id or serial number is no proof: both are
    printed on the box or readable by anyone. Returns the reason, or ""."""
    hardware = _item(context_items, HARDWARE_ITEM)
    digest = hardware_hash_digest(hardware) if hardware else None
    if digest and AutopilotEnrollment.objects.filter(device=old_device, record__hardware_hash_digest=digest).exists():
        return "Autopilot record matched by hardware hash"
    return ""


def link_enrolled_device(device, context_items):
    """Link a freshly enrolled Device to its Autopilot record and profile. Returns the
    AutopilotEnrollment, or None when nothing marks the device as one of ours. Never raises for a
    database problem: the enrollment itself has succeeded and must not turn into an error."""
    try:
        with transaction.atomic():
            return _link(device, context_items or [])
    except (DatabaseError, CommandError):
        logger.exception("Autopilot: could not link device %s to its record", device.pk)
        return None


def _link(device, context_items):
    record, matched_by = find_record(context_items)
    profile, correlator = offline_profile(context_items)
    if record is None and profile is None:
        return None
    if profile is not None:
        reason = f"offline profile file of {profile.name}"
        matched_by = matched_by or AutopilotEnrollment.MatchedBy.CORRELATOR
    else:
        assignment = effective_profile(record)
        profile, reason = assignment.profile, assignment.reason
    user_applied = _apply_user(device, record)
    link, _ = AutopilotEnrollment.objects.update_or_create(device=device, defaults={
        "record": record, "matched_by": matched_by, "profile": profile, "profile_reason": reason[:255],
        "correlation_id": correlator[:64], "user_applied": user_applied,
    })
    AuditEvent.record(None, "autopilot.enrollment_linked", device, detail={
        "record": record.serial_number if record else None, "matched_by": matched_by,
        "profile": profile.name if profile else None, "reason": reason, "user_applied": user_applied,
    })
    return provisioning.apply(link)


def _apply_user(device, record):
    if record is None or not record.assigned_user or device.user_id is not None:
        return False
    user = get_user_model().objects.filter(email__iexact=record.assigned_user, is_active=True).first()
    if user is None:
        return False
    device.user = user
    device.save(update_fields=["user"])
    return True
