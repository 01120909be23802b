"""Actions on devices in the console, clicked through as an administrator does them.

New device actions add their tests here: `run_device_action` selects devices by name in the device
list and runs an action from its menu, as the deletion below does; actions on one device start from
its page, as cancelling a queued command does."""
import pytest

from enrollment.models import Device
from management.models import DeviceCommand
from tests.browser.pages import expect, sign_in_console
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.browser


def run_device_action(page, action, *names):
    page.goto("/admin/enrollment/device/")
    for name in names:
        page.locator("#result_list tbody tr").filter(has_text=name).get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Go").click()


def test_full_administrator_deletes_a_replaced_device_after_confirming(open_page, full_admin, organisation):
    DeviceFactory(name="PC-ALICE")
    DeviceFactory(name="PC-ALICE-OLD", replaced=True)
    page = open_page("console")
    sign_in_console(page, full_admin)

    run_device_action(page, "Delete selected devices", "PC-ALICE-OLD")
    expect(page.get_by_role("heading", name="Delete multiple objects")).to_be_visible()
    expect(page.locator("#content")).to_contain_text("PC-ALICE-OLD")
    page.get_by_role("button", name="Yes, I’m sure").click()

    expect(page.locator(".messagelist")).to_have_text("Successfully deleted 1 device.")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("PC-ALICE")
    assert list(Device.objects.values_list("name", flat=True)) == ["PC-ALICE"]


def test_helpdesk_sees_devices_without_any_action(open_page, helpdesk, organisation):
    DeviceFactory(name="PC-ALICE")
    page = open_page("console")
    sign_in_console(page, helpdesk)
    page.goto("/admin/enrollment/device/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("select[name=action]")).to_have_count(0)
    page.get_by_role("link", name="PC-ALICE").click()
    expect(page.get_by_role("heading", name="View device")).to_be_visible()
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)


def test_administrator_cancels_a_queued_command_from_the_device_page(open_page, full_admin, organisation):
    device = DeviceFactory(name="PC-ALICE")
    reboot = DeviceCommandFactory(device=device, reboot=True, queued_by=full_admin)
    DeviceCommandFactory(device=device, succeeded=True, result_data="10.0.22631.4460", source="inventory")
    page = open_page("console")
    sign_in_console(page, full_admin)
    page.goto("/admin/enrollment/device/")
    page.get_by_role("link", name="PC-ALICE").click()

    waiting = page.locator("#pending-actions")
    expect(waiting.get_by_role("heading", name="Waiting for the device")).to_be_visible()
    queued = waiting.locator("li").filter(has_text="./Device/Vendor/MSFT/Reboot/RebootNow")
    expect(queued).to_contain_text("Queued")
    expect(waiting.get_by_role("link", name="Cancel")).to_have_count(1)
    history = page.locator("#commands")
    expect(history.get_by_role("heading", name="Commands, newest first")).to_be_visible()
    expect(history.locator("tbody tr").first).to_contain_text("./DevDetail/SwV")  # the newest first
    queued.get_by_role("link", name="Cancel").click()

    expect(page.locator("#content")).to_contain_text("The device has not received it yet.")
    page.get_by_role("button", name="Cancel the command").click()

    expect(page.locator(".messagelist")).to_contain_text("Cancelled")
    expect(waiting).to_contain_text("Nothing: the device has received every command.")
    expect(history.locator("tbody tr").filter(has_text="./Device/Vendor/MSFT/Reboot/RebootNow")).to_contain_text(
        "Cancelled")
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.CANCELLED
