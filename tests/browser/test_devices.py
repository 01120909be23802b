"""The console's device list and device page, as an administrator finds a device."""
import pytest

from tests.browser.pages import expect, screenshot, sign_in_console
from tests.factories import UserFactory
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def devices(organisation):
    alice = UserFactory(email="alice@contoso.com", display_name="Alice Martin")
    bruno = UserFactory(email="bruno@contoso.com", display_name="Bruno Petit")
    return {
        "pc": DeviceFactory(user=alice, name="PC-ALICE", os_version="10.0.26100.2605", manufacturer="Contoso",
                            model="Surface Laptop 7", serial_number="SN-0042", total_ram_mb=16384,
                            architecture="x64"),
        "hololens": DeviceFactory(user=bruno, hololens=True, name="HOLOLENS-BRUNO", federated=True),
        "replaced": DeviceFactory(user=alice, replaced=True, name="PC-ALICE-OLD"),
    }


def test_administrator_opens_the_enrolled_devices_from_the_dashboard(open_page, full_admin, devices):
    page = open_page("console")
    sign_in_console(page, full_admin)
    expect(page.locator("#card-devices .figure")).to_have_text("2")
    page.locator("#card-devices").get_by_role("link", name="Enrolled devices").click()

    expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="PC-ALICE")).to_contain_text("alice@contoso.com")
    expect(rows.filter(has_text="HOLOLENS-BRUNO")).to_contain_text("bruno@contoso.com")
    expect(rows.filter(has_text="PC-ALICE")).to_contain_text("Enrolled")
    expect(rows.filter(has_text="PC-ALICE")).to_contain_text("Surface Laptop 7")
    expect(page.get_by_role("link", name="PC-ALICE-OLD")).to_have_count(0)
    screenshot(page, "console-devices")


def test_administrator_searches_a_device_and_reads_its_page(open_page, full_admin, devices):
    device = devices["pc"]
    DeviceCommandFactory(device=device, succeeded=True, result_data="10.0.26100.2605", source="inventory")
    page = open_page("console")
    sign_in_console(page, full_admin)
    page.goto("/admin/enrollment/device/")
    page.locator("#searchbar").fill(device.certificate_thumbprint)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.get_by_role("link", name="PC-ALICE", exact=True).click()

    expect(page.get_by_role("heading", name="View device")).to_be_visible()
    expect(page.get_by_role("heading", name="PC-ALICE", exact=True)).to_be_visible()
    for value in [device.device_id, device.hw_dev_id, device.certificate_thumbprint, "10.0.26100.2605",
                  "Surface Laptop 7", "SN-0042"]:
        expect(page.locator("#content-main")).to_contain_text(value)
    context = page.locator(".field-context_table table")
    expect(context.locator("tr")).to_have_count(5)
    expect(context.locator("tr").filter(has_text="MAC").last).to_contain_text("00-15-5D-01-02-04")
    expect(page.locator("#content-main input[type=text], #content-main select")).to_have_count(0)
    expect(page.locator("#device-summary")).to_contain_text("Surface Laptop 7")
    expect(page.locator("#commands tbody tr").filter(has_text="./DevDetail/SwV")).to_contain_text("inventory")

    page.locator(".field-user").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Change user")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value("alice@contoso.com")
