"""The case-insensitive look-ups every sign-in, RST and OMA-DM session makes are served by indexes,
not by scans of the user and device tables (with 30,000 users and 100,000 devices each scan cost tens
of milliseconds, several times per enrollment). PostgreSQL only: with sequential scans switched off
for the transaction, the plans of the look-ups' conditions must name our expression indexes (on a
nearly empty table the planner would rather filter an index on status, so the conditions are planned
on their own: what matters is that their expressions match the indexes)."""
import pytest
from django.db.models import Q

from accounts.models import User
from autopilot.models import AutopilotDevice
from enrollment.models import Device

pytestmark = pytest.mark.django_db


def test_sign_in_user_lookup_uses_the_case_insensitive_indexes(plan):
    identity = "Dana@Contoso.com"
    found = plan(User.objects.filter(Q(email__iexact=identity) | Q(mdm_username__iexact=identity)))
    assert "user_email_upper_idx" in found and "user_mdm_username_upper_idx" in found, found


def test_same_hardware_lookup_of_an_enrollment_uses_the_case_insensitive_indexes(plan):
    # DeviceQuerySet.same_hardware: DeviceID or HWDevID, as the RST sends them.
    match = Q(device_id__iexact="0123456789ABCDEF0123456789abcdef") | Q(hw_dev_id__iexact="AB" * 32)
    found = plan(Device.objects.filter(match))
    assert "device_device_id_upper_idx" in found and "device_hw_dev_id_upper_idx" in found, found


def test_management_session_device_lookup_uses_the_case_insensitive_index(plan):
    # management/omadm.py: the device named by the session's SyncHdr Source.
    found = plan(Device.objects.filter(device_id__iexact="0123456789abcdef0123456789ABCDEF"))
    assert "device_device_id_upper_idx" in found, found


def test_autopilot_matching_by_ztd_id_uses_the_case_insensitive_index(plan):
    # autopilot/matching.py: an enrollment carrying a ZeroTouchProvisioning context item.
    found = plan(AutopilotDevice.objects.filter(ztd_id__iexact="6a1b7a1e-9f4c-4b77-8a2b-1a2b3c4d5e6f"))
    assert "autopilot_device_ztd_upper_idx" in found, found
