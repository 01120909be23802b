"""The command queue: management.commands.queue / cancel / expire_overdue and the model's guards."""
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from management import commands
from management.models import DeviceCommand
from invitations.models import InvalidTransition
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.django_db


def test_queue_appends_a_command_with_its_origin(admin_user):
    device = DeviceFactory()
    first = commands.queue(device, "Get", "./DevDetail/SwV", source="inventory")
    second = commands.queue(device, "Exec", "./Device/Vendor/MSFT/Reboot/RebootNow", format="null",
                            actor=admin_user, source="console:reboot")

    assert list(device.commands.pending()) == [first, second]
    assert second.status == DeviceCommand.Status.QUEUED
    assert (second.queued_by, second.source, second.format) == (admin_user, "console:reboot", "null")
    assert second.expires_at - second.created_at == timedelta(days=30)


def test_queue_uses_the_given_expiry():
    command = commands.queue(DeviceFactory(), "Get", "./DevInfo/Mod", expires_in=timedelta(hours=2))
    assert command.expires_at - command.created_at == timedelta(hours=2)


@pytest.mark.parametrize("verb, target, format, data, message", [
    ("Copy", "./DevInfo/Mod", "", "", "Unknown verb"),
    ("Get", "/Device/Vendor/MSFT/Reboot", "", "", "never starts with '/'"),
    ("Get", "Device/Vendor", "", "", "must start with './'"),
    ("Get", "", "", "", "1 to 1024"),
    ("Get", "./a//b", "", "", "no empty segments"),
    ("Replace", "./Device/Vendor/MSFT/X", "string", "1", "Unknown format"),
    ("Get", "./DevInfo/Mod", "chr", "x", "no format or data"),
])
def test_queue_refuses_commands_windows_would_not_understand(verb, target, format, data, message):
    device = DeviceFactory()
    with pytest.raises(commands.CommandError, match=message):
        commands.queue(device, verb, target, format=format, data=data)
    assert not DeviceCommand.objects.exists()


def test_queue_refuses_a_device_that_no_longer_checks_in():
    with pytest.raises(commands.CommandError, match="retired"):
        commands.queue(DeviceFactory(retired=True), "Get", "./DevInfo/Mod")


def test_cancel_withdraws_a_queued_command_and_audits_it(admin_user):
    command = DeviceCommandFactory()
    commands.cancel(command, admin_user)

    assert command.status == DeviceCommand.Status.CANCELLED and command.completed_at
    event = AuditEvent.objects.get(action="device.command_cancelled")
    assert event.actor == admin_user and event.detail["command"] == command.pk


def test_cancel_refuses_a_command_already_sent():
    command = DeviceCommandFactory(sent=True)
    with pytest.raises(InvalidTransition):
        commands.cancel(command)
    command.refresh_from_db()
    assert command.status == DeviceCommand.Status.SENT


def test_expire_overdue_times_out_pending_commands_only():
    overdue_queued = DeviceCommandFactory(expired=True)
    overdue_sent = DeviceCommandFactory(expired=True, sent=True)
    done = DeviceCommandFactory(expired=True, succeeded=True)
    fresh = DeviceCommandFactory()

    assert commands.expire_overdue() == 2

    statuses = {c.pk: c.status for c in DeviceCommand.objects.all()}
    assert statuses[overdue_queued.pk] == statuses[overdue_sent.pk] == DeviceCommand.Status.TIMED_OUT
    assert statuses[done.pk] == DeviceCommand.Status.SUCCEEDED
    assert statuses[fresh.pk] == DeviceCommand.Status.QUEUED


def test_unenrolling_a_device_revokes_it_and_closes_its_queue():
    command = DeviceCommandFactory()
    device = command.device
    device.mark_unenrolled()

    device.refresh_from_db()
    command.refresh_from_db()
    assert device.status == device.Status.UNENROLLED and device.revoked_at and device.unenrolled_at
    assert command.status == DeviceCommand.Status.CANCELLED
    assert device.revoked_at <= timezone.now()


def test_expiry_task_times_out_commands_of_devices_that_never_check_in():
    from management.tasks import expire_commands

    stale = DeviceCommandFactory(expired=True)
    assert expire_commands.delay().get() == 1
    stale.refresh_from_db()
    assert stale.status == DeviceCommand.Status.TIMED_OUT
