"""The Content-Security-Policy in a real browser: the main pages of the portal, the pages Windows shows
and the console work under it and make Chromium report no violation (open_page fails a test on any;
the first test shows such a report is caught)."""
import re
from unittest.mock import patch

import pytest
from django.db import OperationalError

from accounts.models import Organisation
from tests import entra_tokens as tokens
from tests.browser.conftest import CSP_VIOLATION
from tests.browser.pages import expect, sign_in_console, sign_in_portal
from tests.enrollment_soap import service_url
from tests.factories import PASSWORD, UserFactory
from tests.factories_enrollment import (
    ConfigurationGroupFactory, DeviceFactory, EntraSettingsFactory, JwksSetFactory, PinEnrollmentFactory,
)

pytestmark = pytest.mark.browser

APPRU = "ms-app://windows.immersivecontrolpanel"


def test_a_violation_is_reported_and_caught(open_page, organisation, csp_violations):
    page = open_page()
    page.goto("/login")
    with page.expect_console_message(lambda message: message.text.startswith(CSP_VIOLATION)):
        page.evaluate("""document.body.insertAdjacentHTML("beforeend", '<p style="color: red">injected</p>')""")
    # Chromium's own console message and the page's securitypolicyviolation event, both collected.
    assert any("CSP violation: style-src-attr refused inline" in line for line in csp_violations), csp_violations
    assert any("violates the following Content Security Policy" in line for line in csp_violations), csp_violations
    csp_violations.clear()  # caught as it should be: do not fail this test for it


def test_portal_pages_raise_no_violation(open_page, organisation, csp_violations):
    organisation.registration_mode = "pin"
    organisation.save()
    UserFactory(email="alice@contoso.com")
    page = open_page("phone", permissions=["clipboard-read", "clipboard-write"])
    sign_in_portal(page, "alice@contoso.com")
    expect(page.locator("#registration-pin")).to_be_visible()
    page.get_by_role("button", name="Copy", exact=True).first.click()
    expect(page.locator(".copy-status").first).to_have_text("Copied")
    assert csp_violations == []


def test_sign_in_and_terms_pages_windows_shows_raise_no_violation(open_page, organisation, csp_violations):
    UserFactory(email="alice@contoso.com")
    organisation.auth_policy = "federated"
    organisation.save()
    page = open_page()
    page.goto(f"{service_url(organisation, 'signin')}?appru={APPRU}&login_hint=alice@contoso.com")
    expect(page.get_by_role("heading")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith('"Segoe UI"')  # signin.css
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    # The nonced script posts the token to the broker, an address Chromium cannot open here.
    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()

    EntraSettingsFactory()
    JwksSetFactory()
    terms = open_page(extra_http_headers={"Authorization": f"Bearer {tokens.make_token()}", "CXH-HOST": "FRX"})
    terms.goto("/EnrollmentServer/TermsOfUse?redirect_uri=ms-appx-web%3A%2F%2FMicrosoft.AAD.BrokerPlugin"
               "&client-request-id=1&api-version=1.0&mode=azureadjoin")
    expect(terms.get_by_role("button", name="Accept")).to_be_visible()
    assert terms.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 66, 117)"  # terms.css, dark
    assert csp_violations == []


def test_console_pages_raise_no_violation(open_page, full_admin, csp_violations):
    device = DeviceFactory(user=UserFactory(email="alice@contoso.com"), name="PC-ALICE")
    group = ConfigurationGroupFactory(name="Kiosks")
    PinEnrollmentFactory(owner=full_admin)
    page = open_page("console")
    sign_in_console(page, full_admin)
    expect(page.locator(".console-card").first).to_have_css("border-radius", "4px")  # console.css
    for url in ["/admin/accounts/user/", "/admin/accounts/user/add/", "/admin/accounts/user/import/",
                "/admin/invitations/invitation/", "/admin/accounts/auditevent/", "/admin/accounts/usergroup/add/",
                f"/admin/enrollment/device/{device.pk}/change/",
                f"/admin/management/configurationgroup/{group.pk}/change/",
                "/admin/enrollment/pinenrollment/add/", "/admin/enrollment/entrasettings/",
                "/admin/getting-started/", "/api/v1/users/"]:
        response = page.goto(url)
        assert response.ok, (url, response.status)
        page.wait_for_load_state("load")
    # Widgets the admin's scripts build: the two-list member selector, an autocomplete (select2) searched.
    page.goto("/admin/accounts/usergroup/add/")
    expect(page.locator(".selector-available").first).to_be_visible()
    page.goto(f"/admin/management/configurationgroup/{group.pk}/change/")
    page.locator(".select2-selection").first.click()
    page.locator(".select2-search__field").first.fill("PC")
    expect(page.locator(".select2-results__option").first).to_be_visible()
    assert csp_violations == []


def test_the_503_page_raises_no_violation(open_page, organisation, csp_violations):
    page = open_page()
    with patch.object(Organisation, "get", autospec=True, side_effect=OperationalError("down")):
        response = page.goto("/login")
    assert response.status == 503
    expect(page.get_by_role("heading", name="Temporarily unavailable")).to_be_visible()
    assert csp_violations == []
