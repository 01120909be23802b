"""A French user's enrollment page is in French, whatever language the browser asks for."""
import pytest

from tests.browser.pages import enrollment_link_values, expect, sign_in_portal
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


def test_french_users_enrollment_page_is_in_french(open_page, organisation):
    amelie = UserFactory(email="amelie@contoso.com", display_name="Amélie Durand", french=True)
    page = open_page("phone", locale="en-US", permissions=["clipboard-read", "clipboard-write"])
    sign_in_portal(page, amelie.email)

    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", name="Inscrire votre appareil")).to_be_visible()
    expect(page.locator("#details-title + .details dt").first).to_have_text("Adresse du serveur")
    expect(page.locator("#server-address")).to_have_text(organisation.enrollment_url)
    expect(page.get_by_role("link", name="Inscrire cet appareil")).to_be_visible()
    assert enrollment_link_values(page)["servername"] == organisation.enrollment_url
    page.get_by_role("button", name="Copier", exact=True).click()
    expect(page.locator(".copy-status")).to_have_text("Copiée")
    expect(page.get_by_text("Enroll your device")).to_have_count(0)
