"""From the Users list's "Send invitation" action to the user's enrollment page, and back to it
through /go, on a phone and on a desktop."""
import re

import pytest
from django.core import mail

from accounts.models import Organisation
from invitations.models import Invitation
from tests.browser.pages import (assert_copy_button_copies, assert_enrollment_page, expect, screenshot,
                                 sign_in_console, sign_in_portal)
from tests.factories import UserFactory

pytestmark = pytest.mark.browser

CLIPBOARD = ["clipboard-read", "clipboard-write"]
NEW_PASSWORD = "Tulip-orbit-42-lantern"


def invitation_link(address):
    [message] = [message for message in mail.outbox if message.to == [address]]
    return re.search(r"^(http://\S+/invite/\S+)$", message.body, re.MULTILINE).group(1)


def test_invitations_sent_from_the_users_list_lead_to_the_enrollment_page(open_page, enrollment_admin, organisation,
                                                                          portal):
    users = {"phone": UserFactory(email="alice@contoso.com", display_name="Alice Martin", no_password=True),
             "desktop": UserFactory(email="bruno@contoso.com", display_name="Bruno Petit", no_password=True)}
    UserFactory(email="carol@contoso.com", display_name="Carol Dupont", no_password=True)

    console = open_page("console")
    sign_in_console(console, enrollment_admin)
    console.locator("#card-users").get_by_role("link", name="Users").click()
    for user in users.values():
        console.get_by_role("row").filter(has_text=user.email).get_by_role("checkbox").check()
    console.locator("select[name=action]").select_option(label="Send invitation")
    screenshot(console, "console-users")
    console.get_by_role("button", name="Go").click()
    # What would happen, before it happens.
    expect(console.locator("#invite-new")).to_contain_text("2 users will get a first invitation.")
    console.get_by_role("button", name="Send the invitations").click()

    expect(console.locator(".messagelist")).to_have_text("Invitations queued for 2 users.")
    for user in users.values():
        expect(console.get_by_role("row").filter(has_text=user.email)).to_contain_text("sent")
    expect(console.get_by_role("row").filter(has_text="carol@contoso.com")).to_contain_text("—")
    assert sorted(message.to[0] for message in mail.outbox) == ["alice@contoso.com", "bruno@contoso.com"]

    enrollment_url = Organisation.get().enrollment_url
    for viewport, user in users.items():
        link = invitation_link(user.email)
        assert link.startswith(portal.url)
        page = open_page(viewport, permissions=CLIPBOARD)
        page.goto(link)
        expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
        expect(page.get_by_text(f"Welcome, {user.get_short_name()}.")).to_be_visible()
        if viewport == "phone":
            screenshot(page, "invitation-phone")
        page.get_by_label("Choose a password").fill(NEW_PASSWORD)
        page.get_by_label("Type it again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save my password and continue").click()

        expect(page).to_have_url(re.compile(r"/enroll$"))
        assert_enrollment_page(page, user, enrollment_url)
        assert_copy_button_copies(page, enrollment_url)
        screenshot(page, f"enrollment-{viewport}", full_page=viewport == "desktop")
        assert Invitation.objects.get(user=user).status == Invitation.Status.ACCEPTED
        user.refresh_from_db()
        assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_user_with_a_password_signs_in_through_go_to_the_enrollment_page(open_page, organisation, viewport):
    alice = UserFactory(email="alice@contoso.com", display_name="Alice Martin")
    page = open_page(viewport, permissions=CLIPBOARD)
    sign_in_portal(page, alice.email)
    assert_enrollment_page(page, alice, organisation.enrollment_url)
    assert_copy_button_copies(page, organisation.enrollment_url)


def test_user_with_an_mdm_username_gets_it_in_the_one_click_link(open_page, organisation):
    alice = UserFactory(email="alice@contoso.com", mdm_username="CONTOSO\\alice")
    page = open_page("phone")
    sign_in_portal(page, "CONTOSO\\alice")
    assert_enrollment_page(page, alice, organisation.enrollment_url)
    expect(page.locator(".details")).to_contain_text("CONTOSO\\alice")
    expect(page.get_by_text("Your device management username is different from your email address.")).to_be_visible()
