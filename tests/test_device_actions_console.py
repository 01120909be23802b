"""Device actions in the console: buttons on the device page, actions on a selection, confirmation
pages, the wipe limit and the checks on names and custom commands."""
import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from management import actions
from enrollment.models import Device
from management.models import DeviceCommand
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:enrollment_device_changelist")


def action_url(name, *devices):
    return f"{reverse('admin:enrollment_device_action', args=[name])}?ids={','.join(str(d.pk) for d in devices)}"


def page(device):
    return reverse("admin:enrollment_device_change", args=[device.pk])


def queued(device):
    return list(device.commands.pending().values_list("verb", "target", "format", "data"))


@pytest.fixture
def enroller(client, enrollment_admin):
    client.force_login(enrollment_admin)
    return client


@pytest.fixture
def device():
    return DeviceFactory(name="PC-0042", os_version="10.0.22631.4460")


# -- who may: the trio ------------------------------------------------------------------------------

def test_action_page_redirects_anonymous(client, device):
    response = client.get(action_url("reboot", device))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_helpdesk_sees_no_action_buttons_and_cannot_open_an_action(client, helpdesk, device):
    client.force_login(helpdesk)
    html = client.get(page(device)).content.decode()
    assert 'id="action-reboot"' not in html and 'id="action-wipe"' not in html

    for name in actions.ACTIONS:
        assert client.get(action_url(name, device)).status_code == 403
        assert client.post(action_url(name, device), {"confirmation": "PC-0042"}).status_code == 403
    assert not DeviceCommand.objects.exists()


def test_enrollment_admin_sees_every_action_on_the_device_page(enroller, device):
    html = enroller.get(page(device)).content.decode()
    for name in actions.ACTIONS:
        assert f'id="action-{name}"' in html


def test_roles_give_the_destructive_permissions_to_administrators_only(full_admin, enrollment_admin, helpdesk):
    destructive = ["enrollment.wipe_device", "enrollment.retire_device", "enrollment.send_custom_command",
                   "enrollment.release_device", "enrollment.change_device", "management.change_configurationgroup"]
    assert full_admin.has_perms(destructive)
    assert enrollment_admin.has_perms(destructive)
    assert not any(helpdesk.has_perm(p) for p in destructive)
    assert helpdesk.has_perm("management.view_configurationgroup")


def test_a_retired_device_offers_no_actions(enroller):
    device = DeviceFactory(retired=True)
    assert 'id="action-reboot"' not in enroller.get(page(device)).content.decode()


# -- sync and reboot --------------------------------------------------------------------------------

def test_sync_now_explains_the_poll_schedule_and_queues_a_harmless_get(enroller, enrollment_admin, device):
    html = enroller.get(action_url("sync", device)).content.decode()
    assert "every 15 minutes 8 times" in html and "every 8 hours" in html

    response = enroller.post(action_url("sync", device), REMOTE_ADDR="192.0.2.7", follow=True)

    assert response.redirect_chain[-1][0] == page(device)
    assert queued(device) == [("Get", "./DevDetail/SwV", "", "")]
    assert "next poll" in response.content.decode()
    event = AuditEvent.objects.get(action="device.sync")
    assert (event.actor, event.ip, event.detail["via"]) == (enrollment_admin, "192.0.2.7", "console")
    command = device.commands.get()
    assert (command.queued_by, command.source) == (enrollment_admin, "console:sync")


def test_reboot_on_a_selection_goes_through_a_confirmation_page(enroller, device):
    other = DeviceFactory()
    response = enroller.post(LIST, {"action": "action_reboot", "_selected_action": [device.pk, other.pk]})
    assert response.status_code == 302
    confirm = response["Location"]
    assert "actions/reboot/" in confirm
    assert not DeviceCommand.objects.exists()

    assert "2 devices" in enroller.get(confirm).content.decode()
    enroller.post(confirm)

    for d in (device, other):
        assert queued(d) == [("Exec", "./Device/Vendor/MSFT/Reboot/RebootNow", "null", "")]


def test_helpdesk_is_offered_no_selection_actions(client, helpdesk, device):
    client.force_login(helpdesk)
    html = client.get(LIST).content.decode()
    assert "action_reboot" not in html and "action_wipe" not in html


def test_a_device_that_left_management_is_skipped_with_a_warning(enroller, device):
    gone = DeviceFactory(retired=True, name="GONE-1")
    response = enroller.post(action_url("reboot", device, gone), follow=True)

    assert "GONE-1: not sent" in response.content.decode()
    assert len(queued(device)) == 1 and not gone.commands.exists()


# -- wipe -------------------------------------------------------------------------------------------

def test_wipe_needs_the_device_name_typed(enroller, device):
    response = enroller.post(action_url("wipe", device), {"mode": "doWipe", "confirmation": "PC-0043"})

    assert response.status_code == 200
    assert "Type the device name, PC-0042, to confirm" in response.content.decode()
    assert not DeviceCommand.objects.exists()

    enroller.post(action_url("wipe", device), {"mode": "doWipeProtected", "confirmation": "PC-0042"})
    assert queued(device) == [("Exec", "./Device/Vendor/MSFT/RemoteWipe/doWipeProtected", "null", "")]
    assert AuditEvent.objects.get(action="device.wipe").detail["mode"] == "doWipeProtected"


def test_wiping_several_devices_needs_their_number_typed(enroller):
    devices = DeviceFactory.create_batch(3)
    enroller.post(action_url("wipe", *devices), {"mode": "doWipe", "confirmation": "PC"})
    assert not DeviceCommand.objects.exists()

    enroller.post(action_url("wipe", *devices), {"mode": "AutomaticRedeployment/doAutomaticRedeployment",
                                                  "confirmation": "3"})
    assert DeviceCommand.objects.filter(
        target="./Device/Vendor/MSFT/RemoteWipe/AutomaticRedeployment/doAutomaticRedeployment").count() == 3


def test_wipe_over_the_limit_is_refused_with_a_clear_message(enroller, settings):
    settings.ENROLLMENT_WIPE_LIMIT = 2
    devices = DeviceFactory.create_batch(3)

    response = enroller.post(action_url("wipe", *devices), {"mode": "doWipe", "confirmation": "3"})

    assert "over the wipe limit of 2 devices per action" in response.content.decode()
    assert not DeviceCommand.objects.exists()
    assert not AuditEvent.objects.filter(action="device.wipe").exists()


# -- rename -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("A-NAME-WAY-TOO-LONG", "at most 15 characters"),
    ("PC 42", "only letters, digits and hyphens"),
    ("PC.42", "only letters, digits and hyphens"),
    ("123456", "cannot be only digits"),
    ("-PC42", "cannot start or end with a hyphen"),
    ("LAB-%RAND:12%", "at most 15 characters"),
])
def test_rename_refuses_names_windows_would_not_take(enroller, device, name, message):
    response = enroller.post(action_url("rename", device), {"name": name})
    assert message in response.content.decode()
    assert not DeviceCommand.objects.exists()


def test_rename_sets_the_dns_computer_name_on_recent_windows_and_can_reboot(enroller, device):
    enroller.post(action_url("rename", device), {"name": "LAB-%SERIAL%", "reboot": "on"})
    assert queued(device) == [("Replace", "./DevDetail/Ext/Microsoft/DNSComputerName", "chr", "LAB-%SERIAL%"),
                              ("Exec", "./Device/Vendor/MSFT/Reboot/RebootNow", "null", "")]


def test_rename_uses_the_accounts_csp_before_windows_10_2004(enroller):
    device = DeviceFactory(os_version="10.0.17763.1")
    enroller.post(action_url("rename", device), {"name": "KIOSK-1"})
    assert queued(device) == [("Add", "./Device/Vendor/MSFT/Accounts/Domain/ComputerName", "chr", "KIOSK-1")]


def test_rename_is_for_one_device_at_a_time(enroller, device):
    response = enroller.post(action_url("rename", device, DeviceFactory()), {"name": "KIOSK-1"})
    assert "one device at a time" in response.content.decode()
    assert not DeviceCommand.objects.exists()


# -- custom command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("form, message", [
    ({"verb": "Replace", "target": "/Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", "format": "int",
      "data": "0"}, "never starts with"),
    ({"verb": "Get", "target": "./DevDetail/SwV", "format": "chr", "data": "x"}, "A Get carries no format or data"),
    ({"verb": "Copy", "target": "./DevDetail/SwV"}, "Copy is not one of the available choices"),
    ({"verb": "Exec", "target": "./a//b"}, "no empty segments"),
])
def test_custom_command_is_validated(enroller, device, form, message):
    response = enroller.post(action_url("custom", device), form)
    assert message in response.content.decode()
    assert not DeviceCommand.objects.exists()


def test_custom_command_is_queued_and_audited_with_its_data(enroller, device):
    enroller.post(action_url("custom", device), {
        "verb": "Replace", "target": "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", "format": "int",
        "type": "text/plain", "data": "0"})

    command = device.commands.get()
    assert (command.verb, command.format, command.type, command.data) == ("Replace", "int", "text/plain", "0")
    detail = AuditEvent.objects.get(action="device.custom").detail
    assert detail["target"] == command.target and detail["data"] == "0"


# -- retire -----------------------------------------------------------------------------------------

def test_retire_sends_unenroll_and_retires_once_acknowledged(enroller, device, settings):
    settings.ENROLLMENT_PROVIDER_ID = "mdmportal"
    enroller.post(action_url("retire", device))
    assert queued(device) == [("Exec", "./Vendor/MSFT/DMClient/Provider/mdmportal/Unenroll", "chr", "mdmportal")]
    assert actions.finish_retirements() == 0  # not acknowledged yet

    device.commands.update(status=DeviceCommand.Status.SUCCEEDED, status_code=200)
    assert actions.finish_retirements() == 1

    device.refresh_from_db()
    assert device.status == Device.Status.RETIRED and device.revoked_at
    assert AuditEvent.objects.filter(action="device.retired").exists()


def test_retire_now_revokes_at_once_and_cancels_what_was_queued(enroller, device):
    waiting = DeviceCommandFactory(device=device)
    enroller.post(action_url("retire", device), {"immediately": "on"})

    device.refresh_from_db()
    waiting.refresh_from_db()
    assert device.status == Device.Status.RETIRED and device.revoked_at
    assert waiting.status == DeviceCommand.Status.CANCELLED
    assert AuditEvent.objects.get(action="device.retire").detail["immediately"] is True


def test_a_refused_unenroll_leaves_the_device_enrolled(enroller, device):
    enroller.post(action_url("retire", device))
    device.commands.update(status=DeviceCommand.Status.FAILED, status_code=405)

    assert actions.finish_retirements() == 0
    device.refresh_from_db()
    assert device.status == Device.Status.ENROLLED


# -- release for re-enrollment ----------------------------------------------------------------------

def test_release_for_re_enrollment_from_the_device_page(enroller, enrollment_admin, device):
    html = enroller.get(action_url("release", device)).content.decode()
    assert "prove nothing" in html and "next poll" not in html  # nothing is sent to the device

    response = enroller.post(action_url("release", device), REMOTE_ADDR="192.0.2.9", follow=True)

    assert response.redirect_chain[-1][0] == page(device)
    assert "released for re-enrollment" in response.content.decode()
    device.refresh_from_db()
    assert device.released_for_reenrollment_at is not None and device.released_for_reenrollment_by == enrollment_admin
    assert device.status == Device.Status.ENROLLED and device.revoked_at is None
    assert not DeviceCommand.objects.exists()
    event = AuditEvent.objects.get(action="device.release")
    assert (event.actor, event.ip, event.detail["via"], event.target_id) == (
        enrollment_admin, "192.0.2.9", "console", str(device.pk))
    # Released once: the page no longer offers it, and asking again changes nothing.
    assert 'id="action-release"' not in enroller.get(page(device)).content.decode()
    enroller.post(action_url("release", device))
    assert AuditEvent.objects.filter(action="device.release").count() == 1


def test_release_on_a_selection_skips_devices_that_left_management(enroller, device):
    gone = DeviceFactory(retired=True, name="GONE-2")
    response = enroller.post(LIST, {"action": "action_release", "_selected_action": [device.pk, gone.pk]})
    assert "actions/release/" in response["Location"]

    html = enroller.post(response["Location"], follow=True).content.decode()

    assert "GONE-2: unchanged. The device is retired." in html
    device.refresh_from_db()
    gone.refresh_from_db()
    assert device.is_released_for_reenrollment and not gone.is_released_for_reenrollment


def test_release_needs_its_own_permission(client, device):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    # Sync, reboot and rename (change_device) but not release: handing a device to anyone is more.
    operator = UserFactory(email="operator@example.com", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(codename__in=["view_device", "change_device"]))
    client.force_login(operator)

    html = client.get(page(device)).content.decode()
    assert 'id="action-sync"' in html and 'id="action-release"' not in html
    assert "action_release" not in client.get(LIST).content.decode()
    assert client.post(action_url("release", device)).status_code == 403
    device.refresh_from_db()
    assert not device.is_released_for_reenrollment
    assert not AuditEvent.objects.filter(action="device.release").exists()
