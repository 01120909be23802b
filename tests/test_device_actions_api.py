"""Device actions over the API: POST /api/v1/devices/{id}/actions/{name}/ and the bulk route, with the
console's permissions and checks."""
import pytest

from accounts.models import AuditEvent
from management.models import DeviceCommand
from tests.api_helpers import HttpsAPIClient
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db


def one(device, name):
    return f"/api/v1/devices/{device.pk}/actions/{name}/"


def bulk(name):
    return f"/api/v1/devices/actions/{name}/"


@pytest.fixture
def device():
    return DeviceFactory(name="PC-0042")


def test_actions_refuse_anonymous_callers(device):
    assert HttpsAPIClient().post(one(device, "reboot")).status_code == 401
    assert not DeviceCommand.objects.exists()


def test_helpdesk_may_not_run_any_action(helpdesk_api, device):
    for name in ("sync", "reboot", "wipe", "retire", "rename", "custom", "release"):
        assert helpdesk_api.post(one(device, name), {}, format="json").status_code == 403
    assert not DeviceCommand.objects.exists()


def test_enrollment_admin_reboots_a_device_and_is_audited(enrollment_api, enrollment_admin, device):
    response = enrollment_api.post(one(device, "reboot"), {}, format="json", REMOTE_ADDR="198.51.100.4")

    assert response.status_code == 202
    body = response.json()
    assert [(c["verb"], c["target"]) for c in body["queued"]] == [("Exec", "./Device/Vendor/MSFT/Reboot/RebootNow")]
    assert "next poll" in body["delivery"]
    event = AuditEvent.objects.get(action="device.reboot")
    assert (event.actor, event.ip, event.detail["via"]) == (enrollment_admin, "198.51.100.4", "api")
    assert device.commands.get().source == "api:reboot"


def test_unknown_action_is_404(full_api, device):
    assert full_api.post(one(device, "explode"), {}, format="json").status_code == 404


def test_wipe_needs_the_typed_confirmation(full_api, device):
    response = full_api.post(one(device, "wipe"), {"mode": "doWipe", "confirmation": "nope"}, format="json")
    assert response.status_code == 400 and "Type the device name, PC-0042" in str(response.json())

    response = full_api.post(one(device, "wipe"), {"mode": "doWipePersistUserData", "confirmation": "PC-0042"},
                             format="json")
    assert response.status_code == 202
    assert device.commands.get().target == "./Device/Vendor/MSFT/RemoteWipe/doWipePersistUserData"


def test_bulk_wipe_over_the_limit_is_refused(full_api, settings):
    settings.ENROLLMENT_WIPE_LIMIT = 2
    devices = DeviceFactory.create_batch(3)

    response = full_api.post(bulk("wipe"), {"devices": [d.pk for d in devices], "mode": "doWipe",
                                            "confirmation": "3"}, format="json")

    assert response.status_code == 400 and "over the wipe limit of 2" in str(response.json())
    assert not DeviceCommand.objects.exists()


def test_bulk_sync_reports_each_device(enrollment_api):
    live, gone = DeviceFactory(), DeviceFactory(retired=True)

    response = enrollment_api.post(bulk("sync"), {"devices": [live.pk, gone.pk]}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert [c["device"] for c in body["queued"]] == [live.pk]
    assert body["skipped"][0]["device"] == gone.pk and "retired" in body["skipped"][0]["reason"]


@pytest.mark.parametrize("payload", [{}, {"devices": []}, {"devices": "1"}, {"devices": [999999]}])
def test_bulk_route_needs_known_device_ids(enrollment_api, payload):
    response = enrollment_api.post(bulk("sync"), payload, format="json")
    assert response.status_code == 400 and "devices" in response.json()
    assert not DeviceCommand.objects.exists()


def test_custom_command_is_validated_by_the_queue_rules(full_api, device):
    response = full_api.post(one(device, "custom"), {"verb": "Replace", "target": "/Vendor/MSFT/X", "format": "int",
                                                     "data": "1"}, format="json")
    assert response.status_code == 400 and "never starts with '/'" in str(response.json())

    response = full_api.post(one(device, "custom"), {"verb": "Get", "target": "./DevDetail/Ext/Microsoft/TotalRAM"},
                             format="json")
    assert response.status_code == 202 and device.commands.get().verb == "Get"


def test_rename_is_validated(enrollment_api, device):
    response = enrollment_api.post(one(device, "rename"), {"name": "THIS-NAME-IS-TOO-LONG"}, format="json")
    assert response.status_code == 400 and "at most 15 characters" in str(response.json())
    assert not DeviceCommand.objects.exists()


def test_retire_immediately_over_the_api(full_api, device):
    response = full_api.post(one(device, "retire"), {"immediately": True}, format="json")

    assert response.status_code == 200 and response.json()["retired"] == [device.pk]
    device.refresh_from_db()
    assert device.status == "retired" and device.revoked_at


def test_release_for_re_enrollment_over_the_api(enrollment_api, enrollment_admin, device):
    response = enrollment_api.post(one(device, "release"), {}, format="json", REMOTE_ADDR="198.51.100.5")

    assert response.status_code == 200
    assert (response.json()["released"], response.json()["queued"]) == ([device.pk], [])
    device.refresh_from_db()
    assert device.released_for_reenrollment_by == enrollment_admin and device.status == "enrolled"
    event = AuditEvent.objects.get(action="device.release")
    assert (event.actor, event.ip, event.detail["via"]) == (enrollment_admin, "198.51.100.5", "api")

    again = enrollment_api.post(bulk("release"), {"devices": [device.pk]}, format="json").json()
    assert again["released"] == [] and "already released" in again["skipped"][0]["reason"]


def test_release_is_refused_without_its_permission(device):
    from django.contrib.auth.models import Permission

    from tests.api_helpers import client_with_token, make_token
    from tests.factories import UserFactory

    operator = UserFactory(email="operator@example.com", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(codename__in=["view_device", "change_device"]))
    api = client_with_token(make_token(operator))

    assert api.post(one(device, "sync"), {}, format="json").status_code == 202
    assert api.post(one(device, "release"), {}, format="json").status_code == 403
    device.refresh_from_db()
    assert not device.is_released_for_reenrollment


def test_device_configuration_is_readable_by_helpdesk(helpdesk_api, device):
    assert helpdesk_api.get(f"/api/v1/devices/{device.pk}/configuration/").json() == []
    assert HttpsAPIClient().get(f"/api/v1/devices/{device.pk}/configuration/").status_code == 401
