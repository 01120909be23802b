"""What an imported Autopilot record gives a PC, by how the PC proved it is that hardware, end to end over
a live server.

A PC reports its SMBIOS serial number and hardware hash when the server reads
./DevDetail/Ext/Microsoft/SMBIOSSerialNumber and ./DevDetail/Ext/DeviceHardwareData (DevDetail CSP) at its
first OMA-DM session. A serial number is printed on the box and on invoices: anyone can claim it. So a
match by serial number alone gives the PC the record's profile only while no other live enrollment holds
the record, and never the record's assigned user; the hardware hash names one PC and gives both."""
import uuid

import pytest

from accounts.models import AuditEvent
from autopilot.models import AutopilotEnrollment
from enrollment.models import Device
from simulator import Simulator, fake_device_tree
from tests import entra_tokens as tokens
from tests.factories import UserFactory
from tests.factories_autopilot import AutopilotDeviceFactory, hardware_hash
from tests.test_autopilot_provisioning import LOCKDOWN, sales_profile  # noqa: F401
from tests.test_autopilot_recognition import HASH, autopilot_commands, windows_pc
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: the real PC's user, a live server)
from tests.test_simulator_entra import entra_server  # noqa: F401  (a live server trusting the test Entra tenant)

SERIAL_ON_THE_BOX = "PF-INVOICE-42"
ASSIGNED = "erin@example.com"


@pytest.fixture
def erin(transactional_db):
    return UserFactory(email=ASSIGNED)


@pytest.fixture
def record(erin, sales_profile):  # noqa: F811
    """The record of the real PC, imported with its assigned user."""
    return AutopilotDeviceFactory(serial_number=SERIAL_ON_THE_BOX, hardware_hash=hardware_hash(42),
                                  assigned_user=ASSIGNED, profile=sales_profile)


def userless_pc(server, **options):
    """A PC joined to Entra with no user (a device token without upn), so that it has no user of its own."""
    token = tokens.make_token(upn=None, unique_name=None, oid=str(uuid.uuid4()), deviceid=str(uuid.uuid4()))
    return Simulator(server.url, None, entra_token=token, device_enrollment=True, **options)


def package_pc(server, **options):
    from tests.factories_enrollment import PPKG_PIN, PinEnrollmentFactory

    package = PinEnrollmentFactory(upn="lab-pool@example.com", owner=UserFactory(email="it-pool@example.com"))
    return Simulator(server.url, package.upn, PPKG_PIN, provisioning_package=True, **options)


def first_session(simulator):
    result = simulator.run()
    session = simulator.checkin(result)
    return Device.objects.get(device_id=result.device_id), session


def real_pc_enrolled(server, record, *, entra=False):
    """The real PC, recognised by its hardware hash: a live device holds the record. It is enrolled by
    carol with her password, or (`entra`) joined to Entra with no user."""
    simulator = userless_pc(server) if entra else windows_pc(server)
    simulator.serial_number, simulator.hardware_hash = record.serial_number, record.hardware_hash
    device, _ = first_session(simulator)
    assert AutopilotEnrollment.objects.get(device=device).record == record
    return device


def audits(action, device):
    return [event.detail for event in AuditEvent.objects.filter(action=action, target_id=str(device.pk))]


def test_a_userless_pc_claiming_a_serial_gets_the_profile_but_not_the_assigned_user(entra_server, record):
    device, session = first_session(userless_pc(entra_server, serial_number=SERIAL_ON_THE_BOX))

    device.refresh_from_db()
    assert device.user is None  # the serial number proves nothing: erin's account is not handed over
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.record, link.matched_by, link.user_applied) == (record, "serial", False)
    assert dict(autopilot_commands(session))[LOCKDOWN] == "Replace"  # the profile is applied all the same
    [detail] = audits("autopilot.enrollment_linked", device)
    assert (detail["matched_by"], detail["user_applied"]) == ("serial", False)
    assert "serial number" in detail["user"]


def test_a_package_pc_claiming_the_serial_of_a_live_pc_does_not_take_its_record(enrollment_server, carol, record):
    real = real_pc_enrolled(enrollment_server, record)

    device, session = first_session(package_pc(enrollment_server, serial_number=SERIAL_ON_THE_BOX))

    assert not AutopilotEnrollment.objects.filter(device=device).exists()
    assert autopilot_commands(session) == []
    assert list(record.enrollments.values_list("device", flat=True)) == [real.pk]
    device.refresh_from_db()
    assert device.user.email == "it-pool@example.com"
    [detail] = audits("autopilot.match_refused", device)
    assert (detail["record"], detail["matched_by"], detail["linked_device"]) == (SERIAL_ON_THE_BOX, "serial", real.pk)
    assert detail["reason"]


def test_a_pc_reporting_the_hash_of_a_live_pc_does_not_take_its_record(entra_server, erin, record):
    real = real_pc_enrolled(entra_server, record, entra=True)

    device, session = first_session(userless_pc(entra_server, hardware_hash=record.hardware_hash))

    assert not AutopilotEnrollment.objects.filter(device=device).exists()
    device.refresh_from_db()
    assert device.user is None
    assert list(record.enrollments.values_list("device", flat=True)) == [real.pk]
    [detail] = audits("autopilot.match_refused", device)
    assert (detail["matched_by"], detail["linked_device"]) == ("hardware_hash", real.pk)


def test_the_real_pc_proves_its_hash_after_someone_claimed_its_serial(entra_server, erin, record):
    squatter, _ = first_session(userless_pc(entra_server, serial_number=SERIAL_ON_THE_BOX))

    real, session = first_session(userless_pc(entra_server, serial_number=SERIAL_ON_THE_BOX,
                                              hardware_hash=record.hardware_hash))

    real.refresh_from_db()
    squatter.refresh_from_db()
    assert real.user == erin and squatter.user is None
    link = AutopilotEnrollment.objects.get(device=real)
    assert (link.record, link.matched_by, link.user_applied) == (record, "hardware_hash", True)
    assert dict(autopilot_commands(session))[LOCKDOWN] == "Replace"
    # The serial number's claim gives way: the squatter keeps the profile it was given, not the record.
    assert AutopilotEnrollment.objects.get(device=squatter).record is None
    assert list(record.enrollments.values_list("device", flat=True)) == [real.pk]
    [detail] = audits("autopilot.record_reclaimed", squatter)
    assert detail["by_device"] == real.pk


def test_a_hash_match_still_gives_the_assigned_user(entra_server, erin, record):
    simulator = userless_pc(entra_server)
    simulator.hardware_hash = record.hardware_hash
    assert fake_device_tree(simulator)[HASH] == record.hardware_hash
    device, session = first_session(simulator)

    device.refresh_from_db()
    assert device.user == erin
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.record, link.matched_by, link.user_applied) == (record, "hardware_hash", True)
    assert dict(autopilot_commands(session))[LOCKDOWN] == "Replace"
    [detail] = audits("autopilot.enrollment_linked", device)
    assert (detail["matched_by"], detail["user_applied"]) == ("hardware_hash", True)


def test_a_pc_with_a_user_of_its_own_keeps_it_on_a_serial_match(enrollment_server, carol, record):
    simulator = windows_pc(enrollment_server)
    simulator.serial_number = SERIAL_ON_THE_BOX
    device, _ = first_session(simulator)
    device.refresh_from_db()
    assert device.user == carol
    assert AutopilotEnrollment.objects.get(device=device).user_applied is False


def test_a_pc_naming_the_ztd_id_of_a_live_pc_does_not_take_its_record(enrollment_server, carol, record):
    record.ztd_id = "ztd-42"
    record.save(update_fields=["ztd_id"])
    real = real_pc_enrolled(enrollment_server, record)

    other = windows_pc(enrollment_server)
    other.extra_context_items = [("ZeroTouchProvisioning", "ztd-42")]
    device, session = first_session(other)

    assert not AutopilotEnrollment.objects.filter(device=device).exists()
    assert list(record.enrollments.values_list("device", flat=True)) == [real.pk]
    [detail] = audits("autopilot.match_refused", device)
    assert (detail["matched_by"], detail["linked_device"]) == ("ztd_id", real.pk)
