"""The getting-started wizard, clicked through by a new full administrator."""
import pytest
from django.core import mail

from accounts.models import Organisation, User
from tests.browser.pages import expect, screenshot, sign_in_console

pytestmark = pytest.mark.browser


def test_new_full_administrator_sets_up_the_organisation_and_invites_the_first_users(open_page, full_admin):
    page = open_page("console")
    sign_in_console(page, full_admin)
    expect(page.locator("#getting-started")).to_contain_text("Welcome: let's get your organisation ready")
    page.get_by_role("link", name="Start the getting-started wizard").click()

    expect(page.get_by_role("heading", name="What is your organisation called?")).to_be_visible()
    expect(page.locator(".wizard-steps [aria-current=step]")).to_have_text("Organisation")
    page.get_by_label("Organisation name").fill("Fabrikam")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="Which host name do devices enroll with?")).to_be_visible()
    page.get_by_label("Enrollment host name").fill("enterpriseenrollment.fabrikam.com")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="Who are your first users?")).to_be_visible()
    page.get_by_label("First users").fill("alice@fabrikam.com, Alice Martin\nbruno@fabrikam.com, Bruno Petit, fr")
    page.get_by_label("Send invitations").check()
    screenshot(page, "wizard-users")
    page.get_by_role("button", name="Finish").click()

    expect(page.get_by_role("heading", name="Your organisation is ready")).to_be_visible()
    expect(page.locator(".wizard-steps [aria-current=step]")).to_have_text("Summary")
    expect(page.get_by_role("heading", name="Fabrikam")).to_be_visible()
    organisation = Organisation.get()
    assert organisation.enrollment_url.startswith("https://enterpriseenrollment.fabrikam.com/EnrollmentServer/")
    expect(page.locator("#enrollment-url")).to_have_text(organisation.enrollment_url)
    expect(page.get_by_text("Users added, with their invitations on the way:")).to_be_visible()
    expect(page.locator("#added-users li")).to_have_text(["alice@fabrikam.com", "bruno@fabrikam.com"])
    screenshot(page, "wizard-summary")

    assert sorted(message.to[0] for message in mail.outbox) == ["alice@fabrikam.com", "bruno@fabrikam.com"]
    assert all(organisation.enrollment_url in message.body for message in mail.outbox)
    assert User.objects.get(email="bruno@fabrikam.com").language == "fr"

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#getting-started")).to_have_count(0)
    expect(page.locator("#card-users .figure")).to_have_text("2")
    expect(page.locator("#card-pending .figure")).to_have_text("2")
