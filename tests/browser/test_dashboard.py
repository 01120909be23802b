"""The console's dashboard in Chromium: its figures, the enrollment URL's copy button and the charts drawn
as inline SVG, all under the strict Content-Security-Policy (open_page fails the test on any violation)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser.pages import expect, screenshot, sign_in_console
from tests.factories import InvitationFactory
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet(organisation):
    now = timezone.now()
    for i in range(12):
        DeviceFactory(enrolled_at=now - timedelta(days=i * 2), last_seen_at=now - timedelta(days=i),
                      os_version=["10.0.22631.4460", "10.0.26100.2605", "10.0.19045.5011"][i % 3],
                      os_edition=[48, 4, 121][i % 3])
    DeviceFactory(hololens=True, os_version="10.0.20348.1432", last_seen_at=None)
    InvitationFactory.create_batch(2)
    InvitationFactory(status="failed")


def test_dashboard_draws_its_charts_and_copies_the_enrollment_url(open_page, full_admin, fleet, organisation,
                                                                   csp_violations):
    page = open_page("console", permissions=["clipboard-read", "clipboard-write"])
    sign_in_console(page, full_admin)

    expect(page.locator("#card-devices .figure")).to_have_text("13")
    expect(page.locator("#card-invitations-failed .figure")).to_have_text("1")
    for chart, name in [("chart-enrollments", "Enrollments per day over the last 30 days"),
                        ("chart-freshness", "Enrolled devices by last check-in"),
                        ("chart-releases", "Enrolled devices by Windows version"),
                        ("chart-editions", "Enrolled devices by Windows edition")]:
        svg = page.locator(f"#{chart} svg")
        expect(svg).to_be_visible()
        expect(page.get_by_role("img", name=name)).to_be_visible()
        box = svg.bounding_box()
        assert box["width"] > 200 and box["height"] > 50, (chart, box)
    expect(page.locator("#chart-enrollments rect.bar")).to_have_count(30)
    expect(page.locator("#chart-releases text.label")).to_contain_text(
        ["Windows 10 22H2", "Windows 11 23H2", "Windows 11 24H2", "Windows Holographic (build 20348)"])
    # The bars are drawn with the stylesheet's colour (a CSS variable), not an inline style.
    fill = page.locator("#chart-freshness rect.bar").first.evaluate("bar => getComputedStyle(bar).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)"), fill
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]

    page.locator("#enrollment-url").get_by_role("button", name="Copy").click()
    expect(page.locator("#enrollment-url .copy-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == organisation.enrollment_url
    screenshot(page, "console-dashboard")

    page.locator("#card-silent").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    expect(page.locator("#result_list tbody tr")).to_have_count(5)  # last seen 7 to 11 days ago
    assert csp_violations == []


def test_dashboard_charts_in_french(open_page, full_admin, fleet):
    page = open_page("console")
    sign_in_console(page, full_admin)
    page.context.add_cookies([{"name": "django_language", "value": "fr", "url": page.url}])
    page.reload()
    expect(page.get_by_role("img", name="Inscriptions par jour sur les 30 derniers jours")).to_be_visible()
    expect(page.locator("#chart-freshness text.label").first).to_have_text("Aujourd’hui")
    expect(page.locator("#card-silent a")).to_have_text("Sans nouvelles depuis 7 jours")
