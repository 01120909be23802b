"""Recognising an imported Autopilot PC as Windows really enrolls it, end to end over a live server.

Windows' enrollment request carries no serial number or hardware hash (MS-MDE2 AdditionalContext: the
DeviceID, HWDevID, DeviceName, MACs, OS version and edition, enrollment type…; Autopilot adds its ZTD id
or the offline profile's correlator). The simulated PC enrolls without them and only answers Gets on
./DevDetail/Ext/Microsoft/SMBIOSSerialNumber and ./DevDetail/Ext/DeviceHardwareData (DevDetail CSP):
the server reads both at the start of the first OMA-DM session, matches the imported record, and the
same session delivers the status page, TenantLockdown, the apps and the groups' settings."""
import json

from django.core.management import call_command

from autopilot.models import AutopilotDevice, AutopilotEnrollment
from enrollment.models import Device
from simulator import Simulator, fake_device_tree
from tests.factories import PASSWORD
from tests.factories_autopilot import AutopilotDeviceFactory, hardware_hash
from tests.test_autopilot_provisioning import CAMERA, ESP, LOCKDOWN, MSI_NODE, sales_profile  # noqa: F401
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: a live server and its user)

SERIAL = "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber"
HASH = "./DevDetail/Ext/DeviceHardwareData"
AUTOPILOT_TARGETS = (ESP, LOCKDOWN, MSI_NODE)


def windows_pc(server):
    """A simulated PC whose enrollment carries only the context items Windows sends."""
    return Simulator(server.url, "carol@example.com", PASSWORD)


def autopilot_commands(session):
    return [(target, verb) for verb, _, target, _, _ in session.commands if target.startswith(AUTOPILOT_TARGETS)]


def gets_of(session):
    return [target for verb, _, target, _, _ in session.commands if verb == "Get" and target in (SERIAL, HASH)]


def test_an_imported_pc_is_recognised_by_its_serial_and_hash_in_its_first_session(enrollment_server, carol,
                                                                                  sales_profile):
    simulator = windows_pc(enrollment_server)
    simulator.serial_number = "PF-RECOGNISE-1"
    tree = fake_device_tree(simulator)
    record = AutopilotDeviceFactory(serial_number="PF-RECOGNISE-1", hardware_hash=tree[HASH], profile=sales_profile)
    result = simulator.run()
    sent_items = {name for name, _ in simulator.context_items()}
    assert not sent_items & {"SMBIOSSerialNumber", "DeviceHardwareData"}  # as Windows: not in the request
    device = Device.objects.get(device_id=result.device_id)
    assert not AutopilotEnrollment.objects.filter(device=device).exists()  # nothing to know it by yet

    session = simulator.checkin(result)

    first = session.messages[0].commands
    assert [(verb, target) for verb, _, target, _, _ in first[:2]] == [("Get", SERIAL), ("Get", HASH)]
    delivered = dict(autopilot_commands(session))
    # The same session: the status page, TenantLockdown, the app and the group's setting.
    assert delivered[ESP + "ExpectedPolicies"] == "Replace"
    assert delivered[ESP + "TimeOutUntilSyncFailure"] == "Replace"
    assert delivered[LOCKDOWN] == "Replace"
    assert delivered[MSI_NODE + "/DownloadInstall"] == "Exec"
    assert simulator.nodes[CAMERA] == "0"
    assert simulator.nodes[ESP + "ExpectedPolicies"] == f"{CAMERA}\uf000{LOCKDOWN}"
    link = AutopilotEnrollment.objects.get(device=device)
    assert (link.record, link.matched_by, link.profile) == (record, "hardware_hash", sales_profile)
    assert link.applied_at is not None and link.esp_started_at is not None  # the page's clock runs
    assert AutopilotDevice.objects.enrolled().get() == record
    assert gets_of(simulator.checkin(result)) == []  # read once, not at every session


def test_the_hardware_hash_alone_recognises_the_pc(enrollment_server, carol, sales_profile):
    simulator = windows_pc(enrollment_server)
    record = AutopilotDeviceFactory(serial_number="PF-OTHER-SERIAL",
                                    hardware_hash=fake_device_tree(simulator)[HASH], profile=sales_profile)
    result = simulator.run()
    session = simulator.checkin(result)
    link = AutopilotEnrollment.objects.get(device__device_id=result.device_id)
    assert (link.record, link.matched_by) == (record, "hardware_hash")
    assert dict(autopilot_commands(session))[LOCKDOWN] == "Replace"


def test_a_pc_that_is_not_imported_gets_nothing_of_autopilot_and_is_not_asked_again(enrollment_server, carol,
                                                                                   sales_profile):
    AutopilotDeviceFactory(serial_number="PF-SOMEONE-ELSE", hardware_hash=hardware_hash(1), profile=sales_profile)
    simulator = windows_pc(enrollment_server)
    result = simulator.run()
    first = simulator.checkin(result)
    assert autopilot_commands(first) == [] and CAMERA not in simulator.nodes
    assert not AutopilotEnrollment.objects.exists()
    assert gets_of(simulator.checkin(result)) == []  # the two nodes are not read at every session
    assert not AutopilotEnrollment.objects.exists()


def test_simulate_device_answers_with_the_serial_and_hash_it_is_given(enrollment_server, carol, sales_profile,
                                                                      capsys):
    record = AutopilotDeviceFactory(serial_number="PF-CLI-1", hardware_hash=hardware_hash(7), profile=sales_profile)
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--serial", "PF-CLI-1", "--hardware-hash", hardware_hash(7), "--checkin", "--json")
    output = json.loads(capsys.readouterr().out)
    targets = [command["target"] for message in output["checkin"]["messages"] for command in message["commands"]]
    assert targets[:2] == [SERIAL, HASH] and LOCKDOWN in targets
    assert AutopilotEnrollment.objects.get(device__device_id=output["device_id"]).record == record


def test_a_record_imported_after_the_first_session_does_not_take_over_a_pc_in_use(enrollment_server, carol,
                                                                                  sales_profile):
    simulator = windows_pc(enrollment_server)
    result = simulator.run()
    simulator.checkin(result)  # no record yet: its serial and hash are read with the inventory
    AutopilotDeviceFactory(serial_number=simulator.serial_number, hardware_hash=simulator.hardware_hash,
                           profile=sales_profile)
    Device.objects.filter(device_id=result.device_id).update(inventory_requested_at=None)  # inventory due again
    later = simulator.checkin(result)
    assert gets_of(later) == [SERIAL, HASH]  # read again with the inventory...
    assert autopilot_commands(later) == [] and not AutopilotEnrollment.objects.exists()  # ...but not acted on
