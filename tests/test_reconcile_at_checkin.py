"""An OMA-DM session's start reconciles the device only when something may have changed since its last
reconciliation (management/reconcile.py, may_be_needed): every kind of change still reaches the device
at its next session, even when the Celery task that the console or the API schedules never ran (in
these tests no task runs: the changes are made as any code path could make them)."""
import pytest
from django.db import connection
from django.utils import timezone

from enrollment.models import Device
from management import reconcile
from management.models import ConfigurationGroup, ConfigurationRevision, DeviceCommand, DeviceReconciliation
from tests import omadm_messages as sml
from tests.factories import UserFactory
from tests.factories_enrollment import (ConfigurationGroupFactory, GroupSettingFactory, certificate_header,
                                        certified_device, create_ca_chain)

pytestmark = pytest.mark.django_db

CAMERA = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"
# A session's first message when the device is reconciled: the mark, its groups' settings, its states,
# and the queue read again after them (it was read with the session, before).
RECONCILIATION = 4


@pytest.fixture
def pc():
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now(), name="DESKTOP-1")
    return device, cert


class Sessions:
    """Whole OMA-DM sessions of one device over HTTP: package 1, then every command answered 200."""

    def __init__(self, client, device, cert):
        self.client, self.device, self.cert, self.count = client, device, cert, 0

    def post(self, body):
        response = self.client.post(sml.URL, body, content_type=sml.CONTENT_TYPE, REMOTE_ADDR="127.0.0.1",
                                    HTTP_X_SSL_CLIENT_CERT=certificate_header(self.cert))
        assert response.status_code == 200, response.content
        return sml.read(response.content)

    def run(self):
        """The (verb, LocURI) of the commands the session's first reply sent."""
        self.count += 1
        session = str(self.count)
        reply = self.post(sml.package1(self.device.device_id, session=session))
        sent = [(name, target) for name, _, target, _, _ in reply.commands]
        msg = 2
        while reply.commands:
            reply = self.post(sml.message(self.device.device_id, [
                sml.status(i + 2, int(reply.msg_id), cmd_id, name, 200)
                for i, (name, cmd_id, *_) in enumerate(reply.commands)], msg=msg, session=session))
            msg += 1
        return sent


@pytest.fixture
def sessions(client, pc):
    device, cert = pc
    return Sessions(client, device, cert)


def test_a_setting_added_to_a_group_goes_out_at_the_next_session(sessions):
    group = ConfigurationGroupFactory(members=[sessions.device])
    assert sessions.run() == []
    GroupSettingFactory(group=group)
    assert sessions.run() == [("Replace", CAMERA)]
    assert sessions.run() == []


def test_a_changed_value_goes_out_at_the_next_session(sessions):
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[sessions.device]))
    assert sessions.run() == [("Replace", CAMERA)]
    setting.value = "1"
    setting.save()
    assert sessions.run() == [("Replace", CAMERA)]
    assert sessions.device.commands.order_by("-pk").first().data == "1"


@pytest.mark.parametrize("how", ["group.devices.add", "device.configuration_groups.add", "group.users.add",
                                 "user.configuration_groups.add"])
def test_a_device_that_joins_a_group_gets_its_settings_at_the_next_session(sessions, how):
    device = sessions.device
    device.user = UserFactory()
    device.save()
    group = GroupSettingFactory(group=ConfigurationGroupFactory()).group
    assert sessions.run() == []
    {"group.devices.add": lambda: group.devices.add(device),
     "device.configuration_groups.add": lambda: device.configuration_groups.add(group),
     "group.users.add": lambda: group.users.add(device.user),
     "user.configuration_groups.add": lambda: device.user.configuration_groups.add(group)}[how]()
    assert sessions.run() == [("Replace", CAMERA)]


@pytest.mark.parametrize("how", ["group.devices.remove", "group.devices.clear", "device.configuration_groups.clear",
                                 "group.delete", "setting.delete"])
def test_a_setting_that_leaves_the_device_is_deleted_at_the_next_session(sessions, how):
    device = sessions.device
    setting = GroupSettingFactory(group=ConfigurationGroupFactory(members=[device]))
    group = setting.group
    assert sessions.run() == [("Replace", CAMERA)]
    {"group.devices.remove": lambda: group.devices.remove(device), "group.devices.clear": group.devices.clear,
     "device.configuration_groups.clear": device.configuration_groups.clear, "group.delete": group.delete,
     "setting.delete": setting.delete}[how]()
    assert sessions.run() == [("Delete", CAMERA)]
    # The device confirmed the removal: the next session forgets the setting, and then has nothing to do.
    assert device.setting_states.get().state == "removed"
    assert sessions.run() == []
    assert not device.setting_states.exists()


@pytest.mark.parametrize("change", [{"name": "LAB-7"}, {"os_version": "10.0.26100.1"}])
def test_a_device_that_now_matches_a_rule_gets_its_settings_whatever_changed_it(sessions, change):
    GroupSettingFactory(group=ConfigurationGroupFactory(rule_enabled=True, rule_name_pattern="LAB-*",
                                                        rule_os_version_prefix="10.0.26100"))
    Device.objects.filter(pk=sessions.device.pk).update(name="LAB-1", os_version="10.0.22631.1")
    assert sessions.run() == []
    # Written without a signal, as an UPDATE from anywhere could.
    Device.objects.filter(pk=sessions.device.pk).update(**change)
    expected = [("Replace", CAMERA)] if change == {"os_version": "10.0.26100.1"} else []
    assert sessions.run() == expected


def test_a_device_whose_user_changes_gets_the_new_users_groups(sessions):
    user = UserFactory()
    GroupSettingFactory(group=ConfigurationGroupFactory()).group.users.add(user)
    assert sessions.run() == []
    Device.objects.filter(pk=sessions.device.pk).update(user=user)
    assert sessions.run() == [("Replace", CAMERA)]


@pytest.mark.parametrize("status", [DeviceCommand.Status.TIMED_OUT, DeviceCommand.Status.CANCELLED])
def test_a_setting_whose_command_got_no_answer_is_sent_again(sessions, status):
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[sessions.device]))
    assert sessions.run() == [("Replace", CAMERA)]
    # As the beat task's expiry sweep or a cancellation in the console leave it.
    sessions.device.commands.update(status=status)
    assert sessions.run() == [("Replace", CAMERA)]
    assert sessions.run() == []


def test_a_setting_whose_command_was_deleted_is_sent_again(sessions):
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[sessions.device]))
    assert sessions.run() == [("Replace", CAMERA)]
    sessions.device.commands.all().delete()
    assert sessions.run() == [("Replace", CAMERA)]


def test_without_the_revision_row_every_session_reconciles(sessions, django_assert_num_queries):
    group = ConfigurationGroupFactory(members=[sessions.device])
    ConfigurationRevision.objects.all().delete()
    assert sessions.run() == []
    GroupSettingFactory(group=group)
    assert sessions.run() == [("Replace", CAMERA)]
    assert DeviceReconciliation.objects.get(device=sessions.device).revision is None


def test_a_session_with_nothing_changed_does_not_reconcile(sessions, django_assert_num_queries):
    GroupSettingFactory(group=ConfigurationGroupFactory(members=[sessions.device]))
    assert sessions.run() == [("Replace", CAMERA)]
    writes = 0 if connection.vendor == "postgresql" else 1  # the session and the device apart on SQLite
    # The device, the session with the queue, the write, and the test transaction's SAVEPOINT and RELEASE.
    with django_assert_num_queries(5 + writes):
        sessions.post(sml.package1(sessions.device.device_id, session="later"))
    ConfigurationRevision.objects.update(number=ConfigurationRevision.objects.get().number + 1)
    with django_assert_num_queries(5 + writes + RECONCILIATION):
        sessions.post(sml.package1(sessions.device.device_id, session="again"))


def test_the_fingerprint_covers_every_input_of_the_membership():
    device = Device(name="PC-1", os_version="10.0.22631.1", kind="pc", method="onpremise", enrollment_type="device",
                    status=Device.Status.ENROLLED, user_id=1)
    changes = {"name": "PC-2", "os_version": "10.0.26100.1", "kind": "hololens", "method": "federated",
               "enrollment_type": "user", "status": "unenrolled", "user_id": 2}
    assert set(changes) == set(ConfigurationGroup.RULE_INPUTS)
    seen = {reconcile.fingerprint(device)}
    for name, value in changes.items():
        setattr(device, name, value)
        seen.add(reconcile.fingerprint(device))
    assert len(seen) == len(changes) + 1


def test_a_device_marked_reconciled_by_its_factory_is_left_alone_until_a_change(sessions, django_assert_num_queries):
    from tests.factories_enrollment import DeviceReconciliationFactory

    sessions.run()  # its sign-in and inventory as package 1 reports them: nothing new in the next one
    DeviceReconciliation.objects.all().delete()
    DeviceReconciliationFactory(device=Device.objects.get(pk=sessions.device.pk))
    writes = 0 if connection.vendor == "postgresql" else 1
    with django_assert_num_queries(5 + writes):
        sessions.post(sml.package1(sessions.device.device_id, session="later"))


def test_a_device_just_enrolled_gets_its_groups_settings_in_its_first_reply(client):
    # Nothing is queued at enrollment: the first session, with no reconciliation on record, does it.
    create_ca_chain()
    GroupSettingFactory(tenant_lockdown=True, group=ConfigurationGroupFactory(everyone=True))
    device, cert = certified_device(inventory_requested_at=timezone.now())
    assert not device.commands.exists()
    assert Sessions(client, device, cert).run() == [("Replace", "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE")]
