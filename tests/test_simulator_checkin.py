"""End to end over a live server: the simulator enrolls, then checks in over OMA-DM."""
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from management import commands
from enrollment.models import Device
from management.models import DeviceCommand, ManagementSession
from simulator import Simulator, SimulatorError
from tests.factories import PASSWORD
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures)

REBOOT = "./Device/Vendor/MSFT/Reboot/RebootNow"


def enroll(server, **kwargs):
    simulator = Simulator(server.url, "carol@example.com", PASSWORD, **kwargs)
    result = simulator.run()
    return simulator, result, Device.objects.get(device_id=result.device_id)


def test_enrolled_pc_checks_in_reports_inventory_and_runs_a_queued_reboot(enrollment_server, carol):
    simulator, result, device = enroll(enrollment_server)
    reboot = commands.queue(device, "Exec", REBOOT, format="null", source="console:reboot")

    session = simulator.checkin(result)

    received = [(verb, target) for verb, _, target, _, _ in session.commands]
    assert ("Exec", REBOOT) in received and ("Get", "./DevDetail/SwV") in received
    assert session.messages[-1].commands == [] and session.auth == "certificate"
    reboot.refresh_from_db()
    assert (reboot.status, reboot.status_code) == (DeviceCommand.Status.SUCCEEDED, 200)
    device.refresh_from_db()
    assert device.last_seen_at and device.login_status == "user"
    assert (device.model, device.os_platform, device.architecture, device.total_ram_mb) == (
        "Surface Laptop 5", "Windows 11 Pro", "x64", 16384)
    assert device.serial_number == simulator.serial_number and device.kind == Device.Kind.PC
    assert ManagementSession.objects.get(device=device).ended_at is not None
    # The next check-in has nothing left to do.
    assert simulator.checkin(result).commands == []


def test_hololens_is_recognised_from_its_inventory(enrollment_server, carol):
    simulator, result, device = enroll(enrollment_server, hololens=True)
    Device.objects.filter(pk=device.pk).update(kind=Device.Kind.PC, os_edition=None)  # forget the enrollment hint
    simulator.checkin(result)
    device.refresh_from_db()
    assert device.kind == Device.Kind.HOLOLENS
    assert (device.model, device.architecture, device.os_edition) == ("HoloLens 2", "ARM64", 136)


def test_digest_check_in_works_without_a_client_certificate(enrollment_server, carol):
    simulator, result, device = enroll(enrollment_server)
    nonce = device.appsrv_nonce
    session = simulator.checkin(result, digest=True)
    # Every message carried a digest made with the nonce of the reply before, and each was accepted
    # for itself (200, never 212, which would let the device drop its credentials).
    assert session.auth == "digest" and len(session.messages) >= 2
    assert [m.header_code for m in session.messages] == ["200"] * len(session.messages)
    device.refresh_from_db()
    assert device.inventory_at is not None and device.appsrv_nonce != nonce
    # The next session starts with the last nonce the device was given.
    assert simulator.checkin(result, digest=True).messages[0].header_code == "200"


def test_unenroll_alert_from_the_simulator_unenrolls_the_device(enrollment_server, carol):
    simulator, result, device = enroll(enrollment_server)
    session = simulator.checkin(result, unenroll=True)
    assert len(session.messages) == 1 and session.messages[0].commands == []
    device.refresh_from_db()
    assert device.status == Device.Status.UNENROLLED and device.revoked_at
    with pytest.raises(SimulatorError, match="HTTP 403"):
        simulator.checkin(result)
    assert AuditEvent.objects.filter(action="device.unenrolled").exists()


def test_command_checks_in_and_prints_what_it_received(enrollment_server, carol, capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--checkin", "--hololens")
    out = capsys.readouterr().out
    assert "OMA-DM session" in out and "Get ./DevInfo/Mod" in out and "Session ended" in out


def test_command_prints_the_session_as_json(enrollment_server, carol, capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--checkin", "--digest", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["checkin"]["auth"] == "digest" and data["checkin"]["messages"][-1]["commands"] == []


def test_command_refuses_unenroll_without_checkin(enrollment_server, carol):
    with pytest.raises(CommandError, match="--checkin"):
        call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                     "--unenroll")
