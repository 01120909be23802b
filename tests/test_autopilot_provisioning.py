"""End to end over a live server: a simulated Autopilot device enrolls, joins its profile's groups,
gets its Enrollment Status Page, TenantLockdown, its apps and its groups' settings at its check-ins,
and is told IsSyncDone / ServerHasFinishedProvisioning once everything reported, failed or timed out
(DMClient CSP). Store apps wait for a signed-in user (the simulator's LoginStatus) and end the account-setup
page in the ./User/ scope. A provisioning-package device joins its package's groups the same way."""
from datetime import timedelta

import pytest
from django.utils import timezone
from lxml import etree

from autopilot import status_page
from autopilot.models import AppInstall, AutopilotEnrollment
from enrollment.models import Device
from management.models import DeviceCommand, DeviceSettingState
from simulator import Simulator
from tests.factories import PASSWORD
from tests.factories_autopilot import AutopilotDeviceFactory, EssentialAppFactory, ProfileFactory
from tests.factories_enrollment import PPKG_PIN, ConfigurationGroupFactory, GroupSettingFactory, PinEnrollmentFactory
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: a live server and its user)

ZTD_ID = "a8f4c5b2-1d3e-4f60-9a7b-0c1d2e3f4a5b"
PRODUCT = "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}"
MSI_NODE = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/%7B9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D%7D"
ESP = "./Device/Vendor/MSFT/DMClient/Provider/mdmportal/FirstSyncStatus/"
USER_ESP = "./User/Vendor/MSFT/DMClient/Provider/mdmportal/FirstSyncStatus/"
STORE_NODE = "./User/Vendor/MSFT/EnterpriseModernAppManagement/AppInstallation/Microsoft.CompanyPortal_8wekyb3d8bbwe"
LOCKDOWN = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"
CAMERA = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"
FINISH = ["ServerHasFinishedProvisioning", "WasDeviceSuccessfullyProvisioned", "IsSyncDone"]


def sent(session):
    """{LocURI: (verb, format, data)} of what the server sent in a session, inventory Gets left out."""
    return {target: (verb, format, data) for verb, _, target, format, data in session.commands
            if not (verb == "Get" and target.startswith(("./DevInfo", "./DevDetail", "./Vendor/MSFT/DeviceStatus")))}


def finish_of(session, prefix=ESP):
    return {target[len(prefix):]: data for target, (_, _, data) in sent(session).items()
            if target.startswith(prefix) and target[len(prefix):] in FINISH}


def user_finish_of(session):
    return finish_of(session, USER_ESP)


@pytest.fixture
def sales_profile(transactional_db):
    group = ConfigurationGroupFactory(name="Sales laptops")
    GroupSettingFactory(group=group)  # the camera blocked
    profile = ProfileFactory(name="Sales", tenant_lockdown=True, esp_timeout_minutes=45,
                             esp_allow_retry=True, configuration_groups=[group])
    EssentialAppFactory(profile=profile, name="Agent", msi_url="https://apps.example.com/agent.msi",
                        product_code=PRODUCT.lower(), sha256="ab" * 32, command_line="/quiet AGENT=1")
    return profile


def autopilot_device(server, items, **options):
    simulator = Simulator(server.url, "carol@example.com", PASSWORD, context_items=items, **options)
    result = simulator.run()
    return simulator, result, Device.objects.get(device_id=result.device_id)


def test_an_autopilot_device_gets_its_groups_lockdown_app_and_a_finished_status_page(enrollment_server, carol,
                                                                                     sales_profile):
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID.upper())])

    assert [group.name for group in device.configuration_groups.all()] == ["Sales laptops"]
    link = device.autopilot
    assert link.applied_at is not None and link.esp_state == "tracking" and link.esp_started_at is None

    session = simulator.checkin(result)
    first = sent(session)
    order = [(verb, target) for verb, _, target, _, _ in session.commands]
    assert order.index(("Add", MSI_NODE + "/DownloadInstall")) < order.index(("Exec", MSI_NODE + "/DownloadInstall"))
    assert order[0] == ("Replace", ESP + "ExpectedPolicies")  # the page learns what to wait for first
    assert first[ESP + "ExpectedPolicies"] == ("Replace", "chr", f"{CAMERA}\uf000{LOCKDOWN}")
    assert first[ESP + "ExpectedMSIAppPackages"] == ("Replace", "chr", f"{MSI_NODE}/Status;1")
    assert first[ESP + "TimeOutUntilSyncFailure"] == ("Replace", "int", "45")
    assert first[ESP + "BlockInStatusPage"] == ("Replace", "int", "3")  # reset and try again offered
    assert first[LOCKDOWN] == ("Replace", "bool", "true")
    assert first[CAMERA] == ("Replace", "int", "0")
    # No Store app, so nothing for the account-setup page to wait for: Windows is told to skip it.
    assert first[ESP + "SkipUserStatusPage"] == ("Replace", "bool", "true")
    assert ESP + "SkipDeviceStatusPage" not in first
    verb, format, job = first[MSI_NODE + "/DownloadInstall"]
    assert (verb, format) == ("Exec", "xml")
    job = etree.fromstring(job)
    assert job.get("id") == PRODUCT
    assert job.findtext("Product/Download/ContentURLList/ContentURL") == "https://apps.example.com/agent.msi"
    assert job.findtext("Product/Validation/FileHash") == "AB" * 32
    assert job.findtext("Product/Enforcement/CommandLine") == "/quiet AGENT=1"
    link.refresh_from_db()
    assert link.esp_started_at is not None and link.esp_deadline == link.esp_started_at + timedelta(minutes=45)


def test_the_status_page_ends_after_every_command_was_answered(enrollment_server, carol, sales_profile):
    AutopilotDeviceFactory(serial_number="PF-SALES-1", profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [], serial_number="PF-SALES-1")

    assert finish_of(simulator.checkin(result)) == {}  # commands delivered, nothing reported yet
    second = simulator.checkin(result)  # the install started: its Status node is read
    assert set(sent(second)) == {MSI_NODE + "/Status", MSI_NODE + "/LastError"} and finish_of(second) == {}
    third = simulator.checkin(result)
    assert finish_of(third) == {"ServerHasFinishedProvisioning": "true", "WasDeviceSuccessfullyProvisioned": "1",
                                "IsSyncDone": "true"}
    assert [target[len(ESP):] for _, _, target, _, _ in third.commands if target.startswith(ESP)] == FINISH
    assert simulator.nodes[ESP + "IsSyncDone"] == "true"

    assert finish_of(simulator.checkin(result)) == {}  # IsSyncDone is never sent twice
    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "succeeded" and link.esp_acknowledged_at is not None
    assert link.counts() == {"expected": 3, "done": 3, "failed": 0}
    install = AppInstall.objects.get(device=device)
    assert (install.state, install.reported_status) == ("installed", "70")
    assert DeviceSettingState.objects.get(device=device, loc_uri=CAMERA).state == "applied"


def test_a_user_driven_device_gets_its_store_app_once_a_user_signed_in(enrollment_server, carol, sales_profile):
    EssentialAppFactory(profile=sales_profile, store=True, name="Company Portal", store_sku="0010",
                        store_claim_seat=True)
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)],
                                                 login_status="none")  # the device phase: nobody signed in

    # The device phase installs the MSI (device scope) and ends without waiting for the Store app.
    device_phase = [simulator.checkin(result) for _ in range(3)]
    assert not [target for session in device_phase for target in sent(session) if target.startswith("./User/")]
    assert set(sent(device_phase[0])) >= {MSI_NODE + "/DownloadInstall", ESP + "ExpectedMSIAppPackages"}
    assert ESP + "ExpectedModernAppPackages" not in sent(device_phase[0])
    assert ESP + "SkipUserStatusPage" not in sent(device_phase[0])  # the account-setup page waits for the app
    assert finish_of(device_phase[2]) == {"ServerHasFinishedProvisioning": "true",
                                          "WasDeviceSuccessfullyProvisioned": "1", "IsSyncDone": "true"}
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.esp_state, link.esp_note) == ("succeeded", "All 3 items done")
    assert (link.user_esp_state, link.user_esp_started_at) == ("tracking", None)
    store = AppInstall.objects.get(device=device, kind="store")
    assert store.state == "queued"
    assert status_page.finish_overdue() == 0  # no user yet: the account setup's clock has not started

    simulator.login_status = "user"
    signed_in = sent(simulator.checkin(result))
    assert signed_in[STORE_NODE] == ("Add", "", "")
    verb, format, data = signed_in[STORE_NODE + "/StoreInstall"]
    application = etree.fromstring(data)
    assert (verb, format) == ("Exec", "xml")
    assert dict(application.attrib) == {"id": "9WZDNCRFJ3PZ", "flags": "1", "skuid": "0010"}
    link.refresh_from_db()
    assert link.user_esp_started_at is not None
    assert link.user_esp_deadline == link.user_esp_started_at + timedelta(minutes=45)

    assert set(sent(simulator.checkin(result))) == {STORE_NODE + "/Status", STORE_NODE + "/LastError"}
    # Windows removed the node: installed, and the account setup page is told it is over, in the user scope.
    assert user_finish_of(simulator.checkin(result)) == {
        "ServerHasFinishedProvisioning": "true", "WasDeviceSuccessfullyProvisioned": "1", "IsSyncDone": "true"}
    simulator.checkin(result)
    link.refresh_from_db()
    assert (link.user_esp_state, link.user_esp_note) == ("succeeded", "All 1 items done")
    assert link.user_esp_acknowledged_at is not None
    assert AppInstall.objects.get(device=device, kind="store").state == "installed"
    assert link.items.get(kind="modern").phase == "user"


def test_the_account_setup_times_out_on_a_store_app_that_never_settles(enrollment_server, carol):
    profile = ProfileFactory(name="Kiosk")
    EssentialAppFactory(profile=profile, store=True, name="Company Portal")
    simulator, result, device = autopilot_device(
        enrollment_server, [("OfflineAutoPilotEnrollmentCorrelator", str(profile.ztd_correlation_id))])
    simulator.checkin(result)  # signed in at once: the install starts
    AutopilotEnrollment.objects.filter(device=device).update(user_esp_deadline=timezone.now() - timedelta(minutes=1))

    assert status_page.finish_overdue() == 1
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.esp_state, link.user_esp_state) == ("succeeded", "timed_out")
    assert "Company Portal" in link.user_esp_note
    assert user_finish_of(simulator.checkin(result))["WasDeviceSuccessfullyProvisioned"] == "0"


def test_a_store_app_of_a_self_deploying_profile_saved_before_the_rule_fails_at_once(enrollment_server, carol):
    profile = ProfileFactory(name="Lobby", self_deploying=True)
    EssentialAppFactory(profile=profile, store=True, name="Company Portal")  # the factory skips clean()
    simulator, result, device = autopilot_device(
        enrollment_server, [("OfflineAutoPilotEnrollmentCorrelator", str(profile.ztd_correlation_id))],
        login_status="none")

    first = simulator.checkin(result)
    assert not [target for target in sent(first) if "EnterpriseModernAppManagement" in target]
    assert finish_of(first)["WasDeviceSuccessfullyProvisioned"] == "0"
    install = AppInstall.objects.get(device=device)
    assert install.state == "failed" and "self-deploying profile has no user" in install.last_error
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.esp_state, link.esp_note, link.user_esp_state) == ("failed", "Failed: Company Portal", "none")


def test_a_failed_msi_install_ends_the_page_as_failed(enrollment_server, carol, sales_profile):
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)],
                                                 msi_install_status=60)
    for _ in range(2):
        simulator.checkin(result)
    assert finish_of(simulator.checkin(result)) == {
        "ServerHasFinishedProvisioning": "true", "WasDeviceSuccessfullyProvisioned": "0", "IsSyncDone": "true"}
    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "failed" and "Agent" in link.esp_note
    install = AppInstall.objects.get(device=device)
    assert install.state == "failed" and "0x80070643" in install.last_error


def test_the_page_times_out_with_a_failure_and_is_still_told_it_is_done(enrollment_server, carol, sales_profile):
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)],
                                                 msi_install_status=50)  # enforcement never ends
    simulator.checkin(result)
    simulator.checkin(result)
    AutopilotEnrollment.objects.filter(device=device).update(esp_deadline=timezone.now() - timedelta(seconds=1))

    assert finish_of(simulator.checkin(result)) == {
        "ServerHasFinishedProvisioning": "true", "WasDeviceSuccessfullyProvisioned": "0", "IsSyncDone": "true"}
    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "timed_out" and "Agent" in link.esp_note


def test_a_silent_device_past_its_time_out_is_finished_by_the_sweep(enrollment_server, carol, sales_profile):
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)])
    simulator.checkin(result)
    AutopilotEnrollment.objects.filter(device=device).update(esp_deadline=timezone.now() - timedelta(minutes=1))

    assert status_page.finish_overdue() == 1
    assert status_page.finish_overdue() == 0
    assert AutopilotEnrollment.objects.get(device=device).esp_state == "timed_out"
    assert finish_of(simulator.checkin(result))["IsSyncDone"] == "true"


def test_end_commands_that_never_reached_the_device_are_queued_again(enrollment_server, carol, sales_profile):
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=sales_profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)])
    simulator.checkin(result)
    AutopilotEnrollment.objects.filter(device=device).update(esp_deadline=timezone.now())
    status_page.finish_overdue()
    # The device stayed away longer than the commands live.
    device.commands.filter(source=status_page.SOURCE_FINISH).update(status=DeviceCommand.Status.TIMED_OUT)

    # The next session notices at its start and sends them again.
    assert finish_of(simulator.checkin(result))["IsSyncDone"] == "true"
    assert AutopilotEnrollment.objects.get(device=device).esp_acknowledged_at is None
    simulator.checkin(result)
    assert AutopilotEnrollment.objects.get(device=device).esp_acknowledged_at is not None


def test_a_profile_without_the_status_page_tells_windows_to_skip_it(enrollment_server, carol):
    profile = ProfileFactory(esp_enabled=False)
    AutopilotDeviceFactory(ztd_id=ZTD_ID, profile=profile)
    simulator, result, device = autopilot_device(enrollment_server, [("ZeroTouchProvisioning", ZTD_ID)])
    first = sent(simulator.checkin(result))
    assert first[ESP + "SkipDeviceStatusPage"] == ("Replace", "bool", "true")
    assert first[ESP + "SkipUserStatusPage"] == ("Replace", "bool", "true")
    assert ESP + "ExpectedPolicies" not in first
    assert AutopilotEnrollment.objects.get(device=device).esp_state == "skipped"


def test_a_pin_enrollment_device_joins_its_groups_and_gets_their_settings(enrollment_server):
    from tests.factories import UserFactory

    lab = ConfigurationGroupFactory(name="Lab PCs")
    GroupSettingFactory(group=lab, tenant_lockdown=True)
    package = PinEnrollmentFactory(upn="enroll-lab@example.com", owner=UserFactory(email="it-pool@example.com"),
                                   configuration_groups=[lab])
    simulator = Simulator(enrollment_server.url, package.upn, PPKG_PIN, provisioning_package=True)
    result = simulator.run()
    device = Device.objects.get(device_id=result.device_id)

    assert list(device.configuration_groups.all()) == [lab]
    assert sent(simulator.checkin(result))[LOCKDOWN] == ("Replace", "bool", "true")
    assert DeviceSettingState.objects.get(device=device, loc_uri=LOCKDOWN).state == "applied"
