"""Configuration groups in the console: who may, settings from the catalogue or raw, members,
compliance, and the device page's setting states."""
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from management.models import ConfigurationGroup, DeviceCommand, GroupSetting
from tests.factories_enrollment import (ConfigurationGroupFactory, DeviceFactory, DeviceSettingStateFactory,
                                        GroupSettingFactory)

pytestmark = pytest.mark.django_db

LIST = reverse("admin:management_configurationgroup_changelist")
ADD = reverse("admin:management_configurationgroup_add")
LOCKDOWN = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"


def group_form(**fields):
    data = {
        "name": "Kiosks", "description": "", "priority": "100", "rule_os_version_prefix": "", "rule_kind": "",
        "rule_method": "", "rule_enrollment_type": "", "rule_name_pattern": "",
        "settings-TOTAL_FORMS": "1", "settings-INITIAL_FORMS": "0", "settings-MIN_NUM_FORMS": "0",
        "settings-MAX_NUM_FORMS": "1000",
        "settings-0-key": "", "settings-0-value": "", "settings-0-loc_uri": "", "settings-0-format": "",
        "settings-0-verb": "Replace", "settings-0-removal": "delete", "settings-0-reset_value": "",
    }
    data.update(fields)
    return data


def test_group_list_redirects_anonymous(client):
    response = client.get(LIST)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_helpdesk_sees_groups_but_cannot_add_or_change_them(client, helpdesk):
    group = ConfigurationGroupFactory(name="Kiosks")
    client.force_login(helpdesk)

    assert "Kiosks" in client.get(LIST).content.decode()
    assert client.get(ADD).status_code == 403
    client.post(reverse("admin:management_configurationgroup_change", args=[group.pk]), group_form(name="Renamed"))
    group.refresh_from_db()
    assert group.name == "Kiosks"


def test_adding_a_group_with_tenant_lockdown_queues_it_for_its_devices(client, enrollment_admin,
                                                                      django_capture_on_commit_callbacks):
    device = DeviceFactory()
    client.force_login(enrollment_admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD, group_form(**{"devices": [device.pk], "settings-0-key": "tenant_lockdown",
                                                  "settings-0-value": "true"}))

    assert response.status_code == 302
    setting = GroupSetting.objects.get()
    assert (setting.loc_uri, setting.format, setting.removal, setting.reset_value) == (LOCKDOWN, "bool", "reset",
                                                                                       "false")
    command = device.commands.get()
    assert (command.verb, command.target, command.format, command.data) == ("Replace", LOCKDOWN, "bool", "true")
    assert AuditEvent.objects.filter(action="configurationgroup.added", actor=enrollment_admin).exists()


@pytest.mark.parametrize("fields, message", [
    ({"settings-0-key": "allow_camera", "settings-0-value": "2"}, "Allow camera takes one of: 0 (Block), 1 (Allow)"),
    ({"settings-0-loc_uri": "/Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", "settings-0-format": "int",
      "settings-0-value": "0"}, "never starts with"),
    ({"settings-0-loc_uri": "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", "settings-0-format": "int",
      "settings-0-value": "yes"}, "takes a whole number"),
    ({"settings-0-loc_uri": "./Vendor/MSFT/X", "settings-0-format": "bool", "settings-0-value": "True"},
     "true or false"),
    ({"settings-0-value": "1"}, "A raw setting needs its LocURI"),
])
def test_a_bad_setting_is_refused_and_nothing_is_saved(console, fields, message):
    response = console.post(ADD, group_form(**fields))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ConfigurationGroup.objects.exists() and not DeviceCommand.objects.exists()


def test_group_page_shows_members_by_reason_and_compliance_counts(console, alice):
    by_hand, by_user, by_rule = (DeviceFactory(name="HAND-1"), DeviceFactory(name="USER-1", user=alice),
                                 DeviceFactory(name="LAB-1"))
    group = ConfigurationGroupFactory(members=[by_hand], rule_enabled=True, rule_name_pattern="LAB-*")
    group.users.add(alice)
    setting = GroupSettingFactory(group=group)
    DeviceSettingStateFactory(device=by_hand, group=group, command__status=DeviceCommand.Status.SUCCEEDED,
                              command__status_code=200)
    DeviceSettingStateFactory(device=by_user, group=group, command__status=DeviceCommand.Status.FAILED,
                              command__status_code=405)

    html = console.get(reverse("admin:management_configurationgroup_change", args=[group.pk])).content.decode()

    assert "3 members" in html
    assert "added by hand" in html and "through its user" in html and "by the rule" in html
    assert setting.label in html
    row = html[html.index('class="compliance-row"'):]
    assert '<td class="applied">1</td>' in row and '<td class="failed">1</td>' in row
    assert '<td class="pending">0</td>' in row


def test_device_page_shows_each_setting_state_with_the_failure_code(console):
    device = DeviceFactory()
    group = ConfigurationGroupFactory(name="Cameras off")
    DeviceSettingStateFactory(device=device, group=group, command__status=DeviceCommand.Status.FAILED,
                              command__status_code=405, command__completed_at=datetime.now(UTC))
    DeviceSettingStateFactory(device=device, loc_uri=LOCKDOWN, label="Require network in OOBE", format="bool",
                              value="true", group=group)

    html = console.get(reverse("admin:enrollment_device_change", args=[device.pk])).content.decode()

    assert "Failed (Status 405)" in html
    assert "Require network in OOBE" in html and "Pending" in html and "Cameras off" in html


def test_deleting_a_group_takes_its_settings_back(console, django_capture_on_commit_callbacks):
    device = DeviceFactory()
    group = ConfigurationGroupFactory(members=[device])
    GroupSettingFactory(group=group)
    DeviceSettingStateFactory(device=device, group=group, applied_once=True,
                              command__status=DeviceCommand.Status.SUCCEEDED, command__status_code=200)

    with django_capture_on_commit_callbacks(execute=True):
        console.post(reverse("admin:management_configurationgroup_delete", args=[group.pk]), {"post": "yes"})

    assert not ConfigurationGroup.objects.exists()
    delete = device.commands.get(status=DeviceCommand.Status.QUEUED)
    assert (delete.verb, delete.target) == ("Delete", "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera")


def test_reapply_retries_failed_settings_of_the_selected_devices(console):
    device = DeviceFactory()
    group = ConfigurationGroupFactory(members=[device])
    GroupSettingFactory(group=group)
    DeviceSettingStateFactory(device=device, group=group, command__status=DeviceCommand.Status.FAILED,
                              command__status_code=500)

    console.post(reverse("admin:enrollment_device_changelist"), {"action": "reapply", "_selected_action": [device.pk]})

    assert device.commands.filter(status=DeviceCommand.Status.QUEUED, verb="Replace").count() == 1


def test_the_delete_summary_names_the_group_and_its_settings_but_no_link_table_rows(client):
    """Django lists the rows of its own many-to-many link tables ("Configurationgroup-device relationship:
    ConfigurationGroup_devices object (3)"), which have no name in any language; the summary leaves them out."""
    from tests.factories import AdminFactory

    group = ConfigurationGroupFactory(name="Kiosks")
    group.devices.add(DeviceFactory())
    GroupSettingFactory(group=group)
    client.force_login(AdminFactory())
    response = client.get(reverse("admin:management_configurationgroup_delete", args=[group.pk]))
    page = response.content.decode()
    assert response.status_code == 200 and "Kiosks" in page
    assert "relationship" not in page and "_devices object" not in page
    assert "Group setting" in page or "group setting" in page.lower()
