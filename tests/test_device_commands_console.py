"""The device page's queue and history, the cancel page and /api/v1/devices/{id}/commands/."""
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import AuditEvent
from management.models import DeviceCommand
from tests.factories import UserFactory
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(admin_user):
    device = DeviceFactory(name="PC-QUEUE", manufacturer="Contoso", model="Surface Pro 9", serial_number="SN-42",
                           total_ram_mb=16384, architecture="x64")
    DeviceCommandFactory(device=device, reboot=True, queued_by=admin_user)
    DeviceCommandFactory(device=device, succeeded=True, result_data="10.0.22631.4460", source="inventory")
    return device


def page(device):
    return reverse("admin:enrollment_device_change", args=[device.pk])


def cancel_url(command):
    return reverse("admin:management_devicecommand_cancel", args=[command.pk])


def test_device_page_redirects_anonymous(client, device):
    response = client.get(page(device), secure=True)
    assert response.status_code == 302


def test_device_page_is_forbidden_without_the_view_permission(client, device):
    client.force_login(UserFactory(email="staff@example.com", is_staff=True))
    assert client.get(page(device), secure=True).status_code == 403


def test_device_page_shows_inventory_queue_and_history(console, device, admin_user):
    html = console.get(page(device), secure=True).content.decode()
    for text in ("Surface Pro 9", "SN-42", "16384", "x64", "./Device/Vendor/MSFT/Reboot/RebootNow", "console:reboot",
                 "10.0.22631.4460", "Acknowledged", "Queued", admin_user.email):
        assert text in html
    queued = device.commands.get(status=DeviceCommand.Status.QUEUED)
    assert cancel_url(queued) in html


def test_cancel_page_cancels_a_queued_command(console, device, admin_user):
    queued = device.commands.get(status=DeviceCommand.Status.QUEUED)
    assert "Cancel the command" in console.get(cancel_url(queued), secure=True).content.decode()
    response = console.post(cancel_url(queued), secure=True)
    assert response.status_code == 302 and response["Location"] == page(device)
    queued.refresh_from_db()
    assert queued.status == DeviceCommand.Status.CANCELLED
    assert AuditEvent.objects.get(action="device.command_cancelled").actor == admin_user


def test_cancel_page_refuses_a_viewer(client, viewer, device):
    client.force_login(viewer)
    queued = device.commands.get(status=DeviceCommand.Status.QUEUED)
    assert client.post(cancel_url(queued), secure=True).status_code == 403
    queued.refresh_from_db()
    assert queued.status == DeviceCommand.Status.QUEUED


def test_cancel_of_a_command_already_sent_changes_nothing(console, device):
    sent = DeviceCommandFactory(device=device, sent=True)
    console.post(cancel_url(sent), secure=True)
    sent.refresh_from_db()
    assert sent.status == DeviceCommand.Status.SENT


def test_command_list_action_cancels_queued_commands(console, device):
    response = console.post(reverse("admin:management_devicecommand_changelist"), {
        "action": "cancel_commands", "_selected_action": [c.pk for c in device.commands.all()]}, secure=True)
    assert response.status_code == 302
    assert set(device.commands.values_list("status", flat=True)) == {DeviceCommand.Status.CANCELLED,
                                                                       DeviceCommand.Status.SUCCEEDED}


@pytest.fixture
def viewer(db):
    user = UserFactory(email="viewer@example.com", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_device", "view_devicecommand"]))
    return user


def test_api_lists_a_device_commands(client, viewer, device):
    client.force_login(viewer)
    response = client.get(f"/api/v1/devices/{device.pk}/commands/", secure=True)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["status"] for r in rows] == ["succeeded", "queued"]
    assert rows[1]["source"] == "console:reboot" and rows[1]["queued_by"] == "root@example.com"
    filtered = client.get(f"/api/v1/devices/{device.pk}/commands/", {"status": "queued"}, secure=True).json()["results"]
    assert [r["target"] for r in filtered] == ["./Device/Vendor/MSFT/Reboot/RebootNow"]


def test_api_command_list_needs_the_command_view_permission(client, device):
    assert client.get(f"/api/v1/devices/{device.pk}/commands/", secure=True).status_code in (401, 403)
    only_devices = UserFactory(email="devices@example.com", is_staff=True)
    only_devices.user_permissions.add(Permission.objects.get(codename="view_device"))
    client.force_login(only_devices)
    assert client.get(f"/api/v1/devices/{device.pk}/commands/", secure=True).status_code == 403
