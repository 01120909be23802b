"""Recognising Autopilot devices: a simulated Windows client over real HTTP is linked to its imported
record and profile by the ZTD id or offline correlator of its enrollment request, or by the serial number
and hardware hash it answers in its first OMA-DM session (Windows sends neither in the request)."""
import pytest

from django.utils import timezone

from accounts.models import AuditEvent
from autopilot.matching import HARDWARE_NODE, SERIAL_NODE, recognise
from autopilot.models import AutopilotDevice, AutopilotEnrollment
from enrollment.models import Device
from simulator import Simulator
from tests.factories import PASSWORD, UserFactory
from tests.factories_autopilot import (AutopilotDeviceFactory, EssentialAppFactory, GroupTagRuleFactory, ProfileFactory,
                                      hardware_hash)
from tests.factories_enrollment import DeviceFactory
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: a live server and its user)


def enroll(server, *items, **answers):
    """Enroll with these context items, then run the first session, where the PC answers the Gets of its
    serial number and hardware hash (`serial_number`, `hardware_hash`: random when not given)."""
    simulator = Simulator(server.url, "carol@example.com", PASSWORD, context_items=list(items), **answers)
    result = simulator.run()
    simulator.checkin(result)
    return Device.objects.get(device_id=result.device_id)


def test_serial_number_links_the_enrolled_device_to_its_record_and_group_tag_profile(enrollment_server, carol):
    profile = ProfileFactory(name="Sales")
    GroupTagRuleFactory(profile=profile, tag="Sales-01")
    record = AutopilotDeviceFactory(serial_number="PF1ABC23", group_tag="Sales-01")
    device = enroll(enrollment_server, serial_number="pf1abc23")
    link = device.autopilot
    assert (link.record, link.matched_by, link.profile) == (record, "serial", profile)
    assert link.profile_reason == "from group tag Sales-01"
    # Applied in the first session, which also ends the page: the profile has nothing to wait for.
    assert link.applied_at is not None and link.esp_state == "succeeded"
    assert AutopilotDevice.objects.enrolled().get() == record
    assert AuditEvent.objects.filter(action="autopilot.enrollment_linked", target_id=str(device.pk)).exists()


def test_a_store_app_waits_for_the_account_setup_of_a_user_driven_device(enrollment_server, carol):
    profile = ProfileFactory(name="Sales")
    EssentialAppFactory(profile=profile, name="Agent")
    EssentialAppFactory(profile=profile, store=True, name="Company Portal", store_sku="0010")
    AutopilotDeviceFactory(serial_number="PF-STORE-1", profile=profile)
    device = enroll(enrollment_server, serial_number="PF-STORE-1")
    link = device.autopilot
    assert (link.esp_state, link.user_esp_state) == ("tracking", "tracking")
    assert {(item.label, item.phase) for item in link.items.filter(kind__in=["msi", "modern"])} == {
        ("Agent", "device"), ("Company Portal", "user")}
    apps = {command.target.rsplit("/", 1)[-1]: command for command in device.commands.filter(source="autopilot:app")}
    assert apps["DownloadInstall"].target.startswith("./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/")
    assert apps["StoreInstall"].target == ("./User/Vendor/MSFT/EnterpriseModernAppManagement/AppInstallation/"
                                           "Microsoft.CompanyPortal_8wekyb3d8bbwe/StoreInstall")
    assert 'skuid="0010"' in apps["StoreInstall"].data and 'flags="0"' in apps["StoreInstall"].data


def test_zero_touch_provisioning_id_links_the_device(enrollment_server, carol):
    default = ProfileFactory(default=True)
    record = AutopilotDeviceFactory(ztd_id="a8f4c5b2-1d3e-4f60-9a7b-0c1d2e3f4a5b")
    device = enroll(enrollment_server, ("ZeroTouchProvisioning", "A8F4C5B2-1D3E-4F60-9A7B-0C1D2E3F4A5B"))
    assert (device.autopilot.record, device.autopilot.matched_by) == (record, "ztd_id")
    assert (device.autopilot.profile, device.autopilot.profile_reason) == (default, "default profile")


def test_offline_correlator_names_the_profile_windows_was_set_up_with(enrollment_server, carol):
    offline = ProfileFactory(name="Existing devices")
    ProfileFactory(default=True)
    device = enroll(enrollment_server, ("OfflineAutoPilotEnrollmentCorrelator", str(offline.ztd_correlation_id)))
    link = device.autopilot
    assert (link.record, link.matched_by, link.profile) == (None, "correlator", offline)
    assert link.profile_reason == "offline profile file of Existing devices"
    assert link.correlation_id == str(offline.ztd_correlation_id)


def test_offline_correlator_with_an_imported_serial_links_both(enrollment_server, carol):
    offline = ProfileFactory()
    record = AutopilotDeviceFactory(serial_number="SN-OFF-1")
    device = enroll(enrollment_server, ("OfflineAutoPilotEnrollmentCorrelator", str(offline.ztd_correlation_id)),
                    serial_number="SN-OFF-1")
    assert (device.autopilot.record, device.autopilot.matched_by, device.autopilot.profile) == (record, "serial", offline)


def test_hardware_hash_links_the_device(enrollment_server, carol):
    record = AutopilotDeviceFactory(serial_number="SN-HASH", hardware_hash=hardware_hash(42))
    device = enroll(enrollment_server, hardware_hash=hardware_hash(42))
    assert (device.autopilot.record, device.autopilot.matched_by) == (record, "hardware_hash")


def test_a_placeholder_serial_never_matches(enrollment_server, carol):
    AutopilotDeviceFactory(serial_number="Default string")
    device = enroll(enrollment_server, serial_number="Default string")
    assert not AutopilotEnrollment.objects.filter(device=device).exists()


def test_an_unknown_device_enrolls_without_a_link(enrollment_server, carol):
    AutopilotDeviceFactory(serial_number="SN-KNOWN")
    device = enroll(enrollment_server, ("OfflineAutoPilotEnrollmentCorrelator", "not-a-guid"),
                    serial_number="SN-OTHER")
    assert device.status == "enrolled"
    assert not AutopilotEnrollment.objects.exists()
    assert AutopilotDevice.objects.pending().count() == 1


@pytest.mark.django_db
def test_the_records_assigned_user_becomes_the_user_of_a_device_without_one():
    # By its hardware hash: a serial number alone, which anyone can report, never hands the user over.
    dana = UserFactory(email="dana@example.com")
    AutopilotDeviceFactory(serial_number="SN-DANA", assigned_user="DANA@example.com", hardware_hash=hardware_hash(5))
    claimant, device = DeviceFactory(user=None), DeviceFactory(user=None)
    link = recognise(claimant, {SERIAL_NODE: "SN-DANA"}, timezone.now())
    claimant.refresh_from_db()
    assert claimant.user is None and not link.user_applied
    link = recognise(device, {SERIAL_NODE: "SN-DANA", HARDWARE_NODE: hardware_hash(5)}, timezone.now())
    device.refresh_from_db()
    assert device.user == dana and link.user_applied


@pytest.mark.django_db
def test_a_device_with_a_user_keeps_it(alice):
    UserFactory(email="dana@example.com")
    AutopilotDeviceFactory(serial_number="SN-DANA", assigned_user="dana@example.com")
    device = DeviceFactory(user=alice)
    link = recognise(device, {SERIAL_NODE: "SN-DANA"}, timezone.now())
    device.refresh_from_db()
    assert device.user == alice and not link.user_applied


@pytest.mark.django_db
def test_a_re_enrollment_of_the_same_device_is_linked_again():
    record = AutopilotDeviceFactory(serial_number="SN-AGAIN")
    first, second = DeviceFactory(replaced=True), DeviceFactory()
    recognise(first, {SERIAL_NODE: "SN-AGAIN"}, timezone.now())
    assert AutopilotDevice.objects.pending().get() == record
    recognise(second, {SERIAL_NODE: "SN-AGAIN"}, timezone.now())
    assert AutopilotDevice.objects.enrolled().get() == record
    assert record.enrollments.count() == 2
