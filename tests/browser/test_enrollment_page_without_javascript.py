"""The enrollment page is complete without JavaScript: Copy is an enhancement, the rest is HTML."""
import pytest

from tests.browser.pages import assert_enrollment_page, expect, sign_in_portal
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_enrollment_page_shows_everything_needed_without_javascript(open_page, organisation, viewport):
    alice = UserFactory(email="alice@contoso.com")
    page = open_page(viewport, java_script_enabled=False)
    sign_in_portal(page, alice.email)

    assert_enrollment_page(page, alice, organisation.enrollment_url)
    expect(page.get_by_role("button", name="Copy", exact=True)).to_be_hidden()
    # The address can still be copied by hand: a click selects all of it.
    page.locator("#server-address").click()
    assert page.evaluate("window.getSelection().toString()") == organisation.enrollment_url
