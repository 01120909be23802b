"""The reconciler: devices converge on their groups' settings, one command per change, states read
from the commands the device answered."""
from datetime import UTC, datetime

import pytest

from management import reconcile
from management.models import DeviceCommand, DeviceSettingState
from tests.factories import UserFactory
from tests.factories_enrollment import ConfigurationGroupFactory, DeviceFactory, GroupSettingFactory

pytestmark = pytest.mark.django_db

CAMERA = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"
LOCKDOWN = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"


def answer(command, code=200):
    """What the OMA-DM endpoint does with the device's Status for a command it sent."""
    command.refresh_from_db()
    command.status = DeviceCommand.Status.SUCCEEDED if 200 <= code < 300 else DeviceCommand.Status.FAILED
    command.status_code, command.completed_at = code, datetime.now(UTC)
    command.save()


def send(command):
    command.refresh_from_db()
    command.status, command.attempts = DeviceCommand.Status.SENT, command.attempts + 1
    command.save()


def state_of(device, loc_uri=CAMERA):
    return DeviceSettingState.objects.select_related("command").get(device=device, loc_uri=loc_uri)


def pending(device):
    return list(device.commands.pending().values_list("verb", "target", "format", "data"))


def test_a_group_with_tenant_lockdown_queues_require_network_in_oobe():
    device = DeviceFactory()
    GroupSettingFactory(tenant_lockdown=True, group=ConfigurationGroupFactory(members=[device]))

    outcome = reconcile.reconcile_device(device)

    assert outcome.queued == 1
    assert pending(device) == [("Replace", LOCKDOWN, "bool", "true")]
    assert state_of(device, LOCKDOWN).state == "pending"


def test_reconciling_again_never_queues_a_setting_twice():
    device = DeviceFactory()
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))

    reconcile.reconcile_device(device)
    reconcile.reconcile_device(device)
    send(state_of(device).command)
    reconcile.reconcile_device(device)

    assert device.commands.count() == 1


def test_an_acknowledged_setting_is_applied_and_left_alone():
    device = DeviceFactory()
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    answer(state_of(device).command)

    assert state_of(device).state == "applied"
    assert reconcile.reconcile_device(device).queued == 0
    assert device.commands.count() == 1


def test_a_changed_value_waits_for_the_answer_to_the_sent_one_then_replaces_it():
    device = DeviceFactory()
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    first = state_of(device).command
    send(first)
    setting.value = "1"
    setting.save()

    assert reconcile.reconcile_device(device).waiting == 1
    assert device.commands.count() == 1

    answer(first)
    reconcile.reconcile_device(device)
    assert pending(device) == [("Replace", CAMERA, "int", "1")]
    assert state_of(device).value == "1"


def test_a_changed_value_replaces_the_queued_command_not_yet_sent():
    device = DeviceFactory()
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    first = state_of(device).command
    setting.value = "1"
    setting.save()

    reconcile.reconcile_device(device)

    first.refresh_from_db()
    assert first.status == DeviceCommand.Status.CANCELLED
    assert pending(device) == [("Replace", CAMERA, "int", "1")]


def test_a_policy_that_leaves_the_device_is_deleted_then_forgotten():
    device = DeviceFactory()
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    answer(state_of(device).command)
    setting.delete()

    reconcile.reconcile_device(device)
    assert pending(device) == [("Delete", CAMERA, "", "")]
    assert state_of(device).state == "removing"

    answer(state_of(device).command)
    reconcile.reconcile_device(device)
    assert not DeviceSettingState.objects.exists()
    assert device.commands.count() == 2


def test_tenant_lockdown_is_taken_back_with_false_as_it_cannot_be_deleted():
    device = DeviceFactory()
    group = ConfigurationGroupFactory(members=[device])
    GroupSettingFactory(tenant_lockdown=True, group=group)
    reconcile.reconcile_device(device)
    answer(state_of(device, LOCKDOWN).command)
    group.devices.remove(device)

    reconcile.reconcile_device(device)

    assert pending(device) == [("Replace", LOCKDOWN, "bool", "false")]


def test_a_setting_removed_before_it_was_sent_is_withdrawn_without_a_delete():
    device = DeviceFactory()
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    setting.delete()

    reconcile.reconcile_device(device)

    assert pending(device) == []
    assert not DeviceSettingState.objects.exists()


def test_a_delete_answered_404_counts_as_removed():
    device = DeviceFactory()
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    answer(state_of(device).command)
    setting.delete()
    reconcile.reconcile_device(device)
    answer(state_of(device).command, 404)

    assert state_of(device).state == "removed"
    reconcile.reconcile_device(device)
    assert not DeviceSettingState.objects.exists()


def test_a_refused_setting_shows_the_code_and_is_retried_only_on_request():
    device = DeviceFactory()
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    answer(state_of(device).command, 405)

    state = state_of(device)
    assert (state.state, state.failure) == ("failed", "Status 405")
    assert reconcile.reconcile_device(device).queued == 0

    assert reconcile.reconcile_device(device, retry_failed=True).queued == 1
    assert state_of(device).state == "pending"


def test_a_command_that_timed_out_is_queued_again():
    device = DeviceFactory()
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    DeviceCommand.objects.update(status=DeviceCommand.Status.TIMED_OUT)

    assert reconcile.reconcile_device(device).queued == 1
    assert len(pending(device)) == 1


def test_the_group_with_the_lower_priority_number_wins_a_locuri():
    device = DeviceFactory()
    strict = ConfigurationGroupFactory(members=[device], priority=10)
    lenient = ConfigurationGroupFactory(members=[device], priority=20)
    GroupSettingFactory(group=strict, value="0")
    GroupSettingFactory(group=lenient, value="1")

    reconcile.reconcile_device(device)
    assert pending(device) == [("Replace", CAMERA, "int", "0")]
    assert state_of(device).group == strict

    answer(state_of(device).command)
    lenient.priority = 5
    lenient.save()
    reconcile.reconcile_device(device)
    assert pending(device) == [("Replace", CAMERA, "int", "1")]
    assert state_of(device).group == lenient


def test_a_raw_setting_is_added_the_first_time_and_replaced_after():
    device = DeviceFactory()
    setting = GroupSettingFactory(raw=True, verb="Add", group=ConfigurationGroupFactory(members=[device]))
    reconcile.reconcile_device(device)
    assert pending(device) == [("Add", setting.loc_uri, "int", "0")]

    answer(state_of(device, setting.loc_uri).command)
    setting.value = "1"
    setting.save()
    reconcile.reconcile_device(device)
    assert pending(device) == [("Replace", setting.loc_uri, "int", "1")]


def test_members_by_user_get_the_settings_on_all_their_enrolled_devices():
    user = UserFactory()
    laptop, hololens, old = DeviceFactory(user=user), DeviceFactory(user=user, hololens=True), DeviceFactory(
        user=user, retired=True)
    group = ConfigurationGroupFactory()
    group.users.add(user)
    GroupSettingFactory(group=group)

    assert group.member_reasons() == {laptop.pk: "user", hololens.pk: "user"}
    for device in (laptop, hololens, old):
        reconcile.reconcile_device(device)
    assert DeviceCommand.objects.filter(device__in=[laptop, hololens]).count() == 2
    assert not old.commands.exists()


@pytest.mark.parametrize("rule, matches", [
    ({"rule_kind": "hololens2"}, {"hololens"}),
    ({"rule_os_version_prefix": "10.0.2"}, {"hololens", "lab"}),
    ({"rule_name_pattern": "lab-*"}, {"lab"}),
    ({"rule_method": "federated"}, {"lab"}),
    ({"rule_enrollment_type": "Device"}, {"hololens"}),
    ({}, {"hololens", "lab", "old"}),
])
def test_the_membership_rule_matches_on_structured_fields(rule, matches):
    devices = {
        "hololens": DeviceFactory(hololens=True, os_version="10.0.20348.1", device_enrollment=True),
        "lab": DeviceFactory(name="LAB-0042", os_version="10.0.22631.1", federated=True),
        "old": DeviceFactory(name="OLD-1", os_version="10.0.19045.1"),
    }
    DeviceFactory(retired=True, name="LAB-9")  # never a member, whatever the rule
    group = ConfigurationGroupFactory(rule_enabled=True, **rule)

    assert set(group.member_reasons()) == {devices[name].pk for name in matches}
    for name, device in devices.items():
        assert (group in reconcile.groups_of(device)) == (name in matches)


def test_a_device_that_no_longer_checks_in_is_not_reconciled():
    device = DeviceFactory(retired=True)
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))

    assert reconcile.reconcile_device(device).queued == 0
    assert not DeviceCommand.objects.exists()


def test_checked_in_queues_the_settings_of_a_rule_the_device_now_matches():
    device = DeviceFactory(name="DESKTOP-1")
    GroupSettingFactory(group=ConfigurationGroupFactory(rule_enabled=True, rule_name_pattern="LAB-*"))
    reconcile.checked_in(device)
    assert pending(device) == []

    device.name = "LAB-7"
    device.save()
    reconcile.checked_in(device)
    assert pending(device) == [("Replace", CAMERA, "int", "0")]
