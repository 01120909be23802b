"""Configuration groups, settings and memberships over the API."""
import pytest

from accounts.models import AuditEvent
from management.models import ConfigurationGroup, DeviceCommand, GroupSetting
from tests.api_helpers import HttpsAPIClient
from tests.factories_enrollment import ConfigurationGroupFactory, DeviceFactory, GroupSettingFactory

pytestmark = pytest.mark.django_db

GROUPS = "/api/v1/configuration-groups/"
SETTINGS = "/api/v1/configuration-settings/"
CAMERA = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"


def test_groups_refuse_anonymous_callers():
    assert HttpsAPIClient().get(GROUPS).status_code == 401


def test_helpdesk_reads_groups_but_cannot_write(helpdesk_api):
    group = ConfigurationGroupFactory(name="Kiosks")
    assert [g["name"] for g in helpdesk_api.get(GROUPS).json()["results"]] == ["Kiosks"]
    assert helpdesk_api.post(GROUPS, {"name": "Mine"}, format="json").status_code == 403
    assert helpdesk_api.post(SETTINGS, {"group": group.pk, "key": "allow_camera", "value": "0"},
                             format="json").status_code == 403
    assert helpdesk_api.post(f"{GROUPS}{group.pk}/membership/", {}, format="json").status_code == 403
    assert helpdesk_api.get(f"{GROUPS}{group.pk}/members/").status_code == 200


def test_enrollment_admin_builds_a_group_and_its_devices_get_the_setting(enrollment_api, alice, enrollment_admin,
                                                                         django_capture_on_commit_callbacks):
    device = DeviceFactory(user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        group = enrollment_api.post(GROUPS, {"name": "Alice's", "users": ["alice@example.com"]}, format="json")
        assert group.status_code == 201
        setting = enrollment_api.post(SETTINGS, {"group": group.json()["id"], "key": "allow_manual_mdm_unenrollment",
                                                 "value": "0"}, format="json")
    assert setting.status_code == 201
    body = setting.json()
    assert (body["loc_uri"], body["format"]) == ("./Device/Vendor/MSFT/Policy/Config/Experience/AllowManualMDMUnenrollment",
                                                 "int")
    command = device.commands.get()
    assert (command.verb, command.target, command.data) == ("Replace", body["loc_uri"], "0")
    assert AuditEvent.objects.filter(action="groupsetting.added", actor=enrollment_admin).exists()

    members = enrollment_api.get(f"{GROUPS}{group.json()['id']}/members/").json()
    assert members["members"] == [{"device": device.pk, "reason": "user"}]
    assert members["compliance"][0]["pending"] == 1


@pytest.mark.parametrize("payload, field", [
    ({"key": "allow_camera", "value": "7"}, "value"),
    ({"key": "no_such_setting", "value": "1"}, "key"),
    ({"loc_uri": "Device/Vendor/MSFT/X", "format": "int", "value": "1"}, "loc_uri"),
    ({"loc_uri": "./Vendor/MSFT/X", "format": "node", "value": "1"}, "format"),
    ({"loc_uri": "./Vendor/MSFT/X", "format": "int", "value": "1", "removal": "reset", "reset_value": "x"},
     "reset_value"),
])
def test_a_bad_setting_is_a_400_naming_the_field(enrollment_api, payload, field):
    group = ConfigurationGroupFactory()
    response = enrollment_api.post(SETTINGS, {"group": group.pk, **payload}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not GroupSetting.objects.exists()


def test_the_same_locuri_twice_in_a_group_is_refused(enrollment_api):
    setting = GroupSettingFactory()
    response = enrollment_api.post(SETTINGS, {"group": setting.group_id, "loc_uri": CAMERA, "format": "int",
                                              "value": "1"}, format="json")
    assert response.status_code == 400 and GroupSetting.objects.count() == 1


def test_membership_changes_add_and_take_back_settings(enrollment_api, django_capture_on_commit_callbacks):
    device = DeviceFactory()
    group = ConfigurationGroupFactory()
    GroupSettingFactory(group=group)
    with django_capture_on_commit_callbacks(execute=True):
        response = enrollment_api.post(f"{GROUPS}{group.pk}/membership/", {"add_devices": [device.pk]}, format="json")
    assert response.json()["members"] == [{"device": device.pk, "reason": "hand"}]
    command = device.commands.get()
    command.status, command.status_code = DeviceCommand.Status.SUCCEEDED, 200
    command.save()

    with django_capture_on_commit_callbacks(execute=True):
        enrollment_api.post(f"{GROUPS}{group.pk}/membership/", {"remove_devices": [device.pk]}, format="json")

    assert list(device.commands.pending().values_list("verb", "target")) == [("Delete", CAMERA)]


def test_membership_with_unknown_ids_changes_nothing(enrollment_api):
    group = ConfigurationGroupFactory()
    response = enrollment_api.post(f"{GROUPS}{group.pk}/membership/",
                                   {"add_devices": [DeviceFactory().pk], "add_users": ["nobody@example.com"]},
                                   format="json")
    assert response.status_code == 400 and "add_users" in response.json()
    assert not group.devices.exists()


def test_rule_groups_over_the_api(enrollment_api, django_capture_on_commit_callbacks):
    hololens, pc = DeviceFactory(hololens=True), DeviceFactory()
    with django_capture_on_commit_callbacks(execute=True):
        group = enrollment_api.post(GROUPS, {"name": "HoloLens", "rule_enabled": True, "rule_kind": "hololens2"},
                                    format="json").json()
        enrollment_api.post(SETTINGS, {"group": group["id"], "key": "allow_usb_connection", "value": "0"},
                            format="json")
    assert hololens.commands.count() == 1 and not pc.commands.exists()


def test_deleting_a_group_over_the_api_is_audited(enrollment_api):
    group = ConfigurationGroupFactory()
    assert enrollment_api.delete(f"{GROUPS}{group.pk}/").status_code == 204
    assert not ConfigurationGroup.objects.exists()
    assert AuditEvent.objects.filter(action="configurationgroup.deleted").exists()


def test_catalogue_lists_the_named_settings(helpdesk_api):
    keys = {entry["key"]: entry for entry in helpdesk_api.get("/api/v1/configuration-catalogue/").json()}
    assert keys["tenant_lockdown"]["loc_uri"] == "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"
    assert keys["tenant_lockdown"]["removal"] == "reset"
