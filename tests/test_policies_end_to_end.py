"""End to end over a live server: groups, settings and console actions reach a simulated Windows
device at its OMA-DM check-in, and what it answers comes back as each setting's state."""
import pytest
from django.urls import reverse

from management import actions, reconcile
from enrollment.models import Device
from management.models import DeviceSettingState
from simulator import Simulator, SimulatorError
from tests.api_helpers import client_with_token, make_token
from tests.factories import PASSWORD
from tests.factories_enrollment import ConfigurationGroupFactory, GroupSettingFactory
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures)

LOCKDOWN = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"
CAMERA = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"
REBOOT = "./Device/Vendor/MSFT/Reboot/RebootNow"


def enroll(server):
    simulator = Simulator(server.url, "carol@example.com", PASSWORD)
    result = simulator.run()
    return simulator, result, Device.objects.get(device_id=result.device_id)


def received(session, *, skip_inventory=True):
    return [(verb, target, format, data) for verb, _, target, format, data in session.commands
            if not (skip_inventory and verb == "Get")]


@pytest.fixture
def api(transactional_db):
    from accounts import roles
    from tests.factories import role_admin

    return client_with_token(make_token(role_admin(roles.ENROLLMENT_ADMIN, "enroller@example.com")))


def test_a_group_with_tenant_lockdown_delivers_it_at_the_first_check_in(enrollment_server, carol):
    GroupSettingFactory(tenant_lockdown=True, group=ConfigurationGroupFactory(name="All devices", everyone=True))

    simulator, result, device = enroll(enrollment_server)
    session = simulator.checkin(result)

    assert (("Replace", LOCKDOWN, "bool", "true")) in received(session)
    state = DeviceSettingState.objects.get(device=device, loc_uri=LOCKDOWN)
    assert state.state == "applied" and state.command.status_code == 200
    assert received(simulator.checkin(result)) == []


def test_a_reboot_from_the_console_arrives(enrollment_server, carol, client, transactional_db):
    from accounts import roles
    from tests.factories import role_admin

    simulator, result, device = enroll(enrollment_server)
    client.force_login(role_admin(roles.ENROLLMENT_ADMIN, "enroller@example.com"))
    client.post(f"{reverse('admin:enrollment_device_action', args=['reboot'])}?ids={device.pk}")

    session = simulator.checkin(result)

    assert ("Exec", REBOOT, "null", "") in received(session)
    assert device.commands.get(target=REBOOT).status_code == 200


def test_settings_converge_through_the_api_add_change_remove(enrollment_server, carol, api):
    simulator, result, device = enroll(enrollment_server)
    simulator.checkin(result)  # first session: inventory only
    group = api.post("/api/v1/configuration-groups/", {"name": "Lab", "devices": [device.pk]}, format="json").json()

    setting = api.post("/api/v1/configuration-settings/",
                       {"group": group["id"], "key": "allow_camera", "value": "0"}, format="json").json()
    assert received(simulator.checkin(result)) == [("Replace", CAMERA, "int", "0")]

    api.patch(f"/api/v1/configuration-settings/{setting['id']}/", {"value": "1"}, format="json")
    assert received(simulator.checkin(result)) == [("Replace", CAMERA, "int", "1")]
    states = api.get(f"/api/v1/devices/{device.pk}/configuration/").json()
    assert [(s["loc_uri"], s["value"], s["state"], s["status_code"]) for s in states] == [(CAMERA, "1", "applied", 200)]

    api.post(f"/api/v1/configuration-groups/{group['id']}/membership/", {"remove_devices": [device.pk]}, format="json")
    assert received(simulator.checkin(result)) == [("Delete", CAMERA, "", "")]
    assert received(simulator.checkin(result)) == []  # nothing queued twice
    reconcile.checked_in(device)  # the acknowledged Delete closes the setting's row
    assert not DeviceSettingState.objects.filter(device=device).exists()


def test_retire_unenrolls_then_the_device_can_no_longer_check_in(enrollment_server, carol, api):
    simulator, result, device = enroll(enrollment_server)
    api.post(f"/api/v1/devices/{device.pk}/actions/retire/", {}, format="json")

    session = simulator.checkin(result)
    assert ("Exec", "./Vendor/MSFT/DMClient/Provider/mdmportal/Unenroll", "chr", "mdmportal") in received(session)
    assert actions.finish_retirements() == 1

    device.refresh_from_db()
    assert device.status == Device.Status.RETIRED
    with pytest.raises(SimulatorError, match="HTTP 403"):
        simulator.checkin(result)
