"""In Chromium: an end user resets a forgotten password from the sign-in page on a phone, and an
administrator follows up a user (the user page's summary, password reset, invitation resend, enrollment
troubleshooting), each page without sideways scrolling or a CSP violation."""
import re

import pytest
from django.core import mail

from accounts.models import AuditEvent
from tests.browser.pages import expect, screenshot, sign_in_console
from tests.factories import InvitationFactory, UserFactory
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Lantern-Orchard-1987"


def assert_no_sideways_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], page.url


def test_user_resets_a_forgotten_password_on_a_phone(open_page, portal):
    UserFactory(email="dana@contoso.com", display_name="Dana")
    page = open_page("phone")
    page.goto("/go")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    assert_no_sideways_scroll(page)
    page.get_by_label("Email").fill("dana@contoso.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert_no_sideways_scroll(page)

    link = re.search(r"https?://\S+/password/reset/\S+", mail.outbox[0].body).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, "password-reset-phone")
    page.get_by_role("textbox", name="New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Type it again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.get_by_role("heading", name="Your password is changed")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Email or username").fill("dana@contoso.com")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/enroll$"))


@pytest.mark.parametrize("viewport", ["console", "phone"])
def test_administrator_follows_up_a_user(open_page, portal, full_admin, viewport):
    erin = UserFactory(email="erin@contoso.com", display_name="Erin")
    invitation = InvitationFactory(user=erin)
    device = DeviceFactory(user=erin, name="PC-ERIN")
    AuditEvent.record(None, "enrollment.refused", erin, ip="198.51.100.7", detail={
        "step": "enrollment", "fault": "s:Authorization", "error_type": "DeviceCapReached", "code": "0x80180013",
        "message": "You have reached your device limit.", "reason": f"user {erin.pk} has 5 of 5 devices",
        "device_id": device.device_id, "trace_id": "2493ee37-beeb-4cb9-833c-cadde9067645", "account": erin.email})
    page = open_page(viewport)
    sign_in_console(page, full_admin)

    page.goto(f"/admin/accounts/user/{erin.pk}/change/")
    summary = page.locator("#user-summary")
    expect(summary).to_contain_text("PC-ERIN")
    assert_no_sideways_scroll(page)
    screenshot(page, f"console-user-{viewport}")

    page.locator("#user-summary").get_by_role("link", name="Enrollment troubleshooting").click()
    expect(page.locator(".windows-code")).to_have_text("0x80180013")
    expect(page.locator(".advice")).to_contain_text("Raise the device limit")
    assert_no_sideways_scroll(page)
    screenshot(page, f"console-troubleshooting-{viewport}")

    page.goto(f"/admin/accounts/user/{erin.pk}/change/")
    page.locator("#send-password-reset").click()
    page.get_by_role("button", name="Yes, send the email").click()
    expect(page.locator(".messagelist")).to_contain_text("A password reset email is on its way")

    page.goto(f"/admin/invitations/invitation/{invitation.pk}/change/")
    page.locator("#invitation-resend").click()
    assert_no_sideways_scroll(page)
    page.get_by_role("button", name="Yes, resend").click()
    expect(page.locator(".messagelist")).to_contain_text("Invitation resent to erin@contoso.com.")
