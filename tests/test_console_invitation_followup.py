"""Following up invitations in the console: Resend and Revoke on the invitation's page (each confirmed,
audited, and explained when refused), the confirmation of the bulk revoke and of "Send invitation",
and a newer invitation link superseding the older ones, over HTTP end to end."""
import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent
from invitations.models import Invitation, InvitationEmail
from tests.console_fixtures import action, messages_of
from tests.factories import InvitationFactory, UserFactory
from tests.factories_enrollment import DeviceFactory

INVITATIONS = "/admin/invitations/invitation/"
USERS = "/admin/accounts/user/"


def page(invitation, what=""):
    return f"{INVITATIONS}{invitation.pk}/{what + '/' if what else 'change/'}"


def links_in_outbox():
    found = []
    for message in mail.outbox:
        found += re.findall(re.escape(settings.PORTAL_URL) + r"(/invite/[\w-]+)", message.body)
    return found


# Resend and Revoke on the invitation's page.

def test_invitation_page_offers_resend_and_revoke(console, db):
    invitation = InvitationFactory()

    html = console.get(page(invitation)).content.decode()

    assert f'href="{page(invitation, "resend")}"' in html
    assert f'href="{page(invitation, "revoke")}"' in html
    assert "cannot be resent" not in html


def test_resend_asks_then_sends_a_new_link_and_audits(console, organisation, django_capture_on_commit_callbacks):
    invitation = InvitationFactory()

    confirm = console.get(page(invitation, "resend"))
    assert confirm.status_code == 200
    assert f"Send the invitation to {invitation.user.email} again?" in confirm.content.decode()
    assert 'name="csrfmiddlewaretoken"' in confirm.content.decode()
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(page(invitation, "resend"), REMOTE_ADDR="192.0.2.9", follow=True)

    assert response.redirect_chain[-1][0] == page(invitation)
    assert f"Invitation resent to {invitation.user.email}." in messages_of(response)
    assert [m.to for m in mail.outbox] == [[invitation.user.email]]
    assert AuditEvent.objects.get(action="invitation.resent").ip == "192.0.2.9"


def test_resend_is_checked_for_csrf(admin_user, organisation):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    invitation = InvitationFactory()

    assert strict.post(page(invitation, "resend")).status_code == 403
    assert not InvitationEmail.objects.exists()


@pytest.mark.parametrize("traits, reason, next_step", [
    ({"revoked": True}, "This invitation was revoked", "Send a new invitation"),
    ({"accepted": True}, "already accepted this invitation", "send a password reset from their page"),
    ({"status": "completed", "completed_at": "2026-01-01T00:00:00Z"}, "The user is already enrolled",
     "regenerate the enrollment URL"),
])
def test_an_invitation_that_cannot_be_resent_says_why_and_what_to_do(console, organisation, traits, reason,
                                                                     next_step, django_capture_on_commit_callbacks):
    invitation = InvitationFactory(**traits)

    change = console.get(page(invitation)).content.decode()
    assert "This invitation cannot be resent." in change and reason in change and next_step in change
    confirm = console.get(page(invitation, "resend")).content.decode()
    assert reason in confirm and next_step in confirm and "Yes, resend" not in confirm

    with django_capture_on_commit_callbacks(execute=True):
        refused = console.post(page(invitation, "resend"))

    assert refused.status_code == 409
    assert next_step in refused.content.decode()
    assert mail.outbox == [] and not InvitationEmail.objects.exists()
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_deactivated_user_cannot_be_resent_an_invitation(console, organisation):
    invitation = InvitationFactory(user=UserFactory(is_active=False))

    response = console.post(page(invitation, "resend"))

    assert response.status_code == 409
    assert "Reactivate the account" in response.content.decode()
    assert not InvitationEmail.objects.exists()


def test_revoke_asks_then_revokes_and_audits(console, db):
    invitation = InvitationFactory()

    confirm = console.get(page(invitation, "revoke")).content.decode()
    assert f"Revoke the invitation of {invitation.user.email}?" in confirm
    invitation.refresh_from_db()
    assert invitation.revoked_at is None

    response = console.post(page(invitation, "revoke"), REMOTE_ADDR="192.0.2.10", follow=True)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert f"Invitation for {invitation.user.email} revoked." in messages_of(response)
    assert AuditEvent.objects.get(action="invitation.revoked").ip == "192.0.2.10"


def test_revoking_a_completed_invitation_is_refused_with_the_next_step(console, db):
    invitation = InvitationFactory(status="completed", completed_at="2026-01-01T00:00:00Z")

    response = console.post(page(invitation, "revoke"))

    assert response.status_code == 409
    assert "retire or wipe it" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_helpdesk_has_no_resend_or_revoke(client, helpdesk, organisation):
    client.force_login(helpdesk)
    invitation = InvitationFactory()

    html = client.get(page(invitation)).content.decode()

    assert "invitation-resend" not in html and "invitation-revoke" not in html
    assert client.get(page(invitation, "resend")).status_code == 403
    assert client.post(page(invitation, "revoke")).status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_bulk_revoke_asks_first(console, db):
    pending, revoked = InvitationFactory(), InvitationFactory(revoked=True)

    confirm = console.post(INVITATIONS, action("revoke", pending, revoked))

    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Revoke 2 invitations?" in html
    assert f"{revoked.user.email}: This invitation is already revoked." in html
    pending.refresh_from_db()
    assert pending.revoked_at is None and not AuditEvent.objects.filter(action="invitation.revoked").exists()

    console.post(INVITATIONS, action("revoke", pending, revoked, confirmed=True))

    pending.refresh_from_db()
    assert pending.status == Invitation.Status.REVOKED
    assert AuditEvent.objects.filter(action="invitation.revoked").count() == 1


# Users → Send invitation: what would happen, before it happens.

def test_send_invitation_shows_counts_and_who_is_enrolled_before_sending(console, organisation,
                                                                         django_capture_on_commit_callbacks):
    newcomer = UserFactory(email="new@example.com")
    waiting = UserFactory(email="waiting@example.com")
    InvitationFactory(user=waiting)
    enrolled = UserFactory(email="enrolled@example.com")
    DeviceFactory(user=enrolled)
    gone = UserFactory(email="gone@example.com", is_active=False)
    selection = action("send_invitations", newcomer, waiting, enrolled, gone)

    with django_capture_on_commit_callbacks(execute=True):
        confirm = console.post(USERS, selection)

    assert confirm.status_code == 200 and mail.outbox == []
    html = confirm.content.decode()
    assert "1 user will get a first invitation." in html
    assert "1 user has a pending invitation, sent again" in html
    assert "1 user is already enrolled and is skipped." in html
    assert "1 user is deactivated and is skipped." in html
    enrolled_block = html.split('id="invite-enrolled"')[1].split("</div>")[0]
    assert "enrolled@example.com" in enrolled_block and "new@example.com" not in enrolled_block
    assert 'name="post" value="yes"' in html

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(USERS, {**selection, "post": "yes"}, follow=True)

    assert sorted(m.to[0] for m in mail.outbox) == ["new@example.com", "waiting@example.com"]
    assert "Invitations queued for 2 users." in messages_of(response)
    assert "1 already enrolled user was not invited." in messages_of(response)
    assert "1 inactive user was not invited." in messages_of(response)


def test_send_invitation_can_include_enrolled_users(console, organisation, django_capture_on_commit_callbacks):
    enrolled = UserFactory(email="enrolled@example.com")
    DeviceFactory(user=enrolled)

    with django_capture_on_commit_callbacks(execute=True):
        console.post(USERS, {**action("send_invitations", enrolled, confirmed=True), "include_enrolled": "yes"})

    assert [m.to[0] for m in mail.outbox] == ["enrolled@example.com"]


def test_send_invitation_confirmation_costs_the_same_queries_for_3_or_30_users(console, organisation):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def confirm(users):
        with CaptureQueriesContext(connection) as queries:
            assert console.post(USERS, action("send_invitations", *users)).status_code == 200
        return len(queries)

    assert confirm([UserFactory() for _ in range(3)]) == confirm([UserFactory() for _ in range(30)])


# A newer invitation supersedes the older links, over HTTP.

def test_older_links_say_they_were_replaced_after_resend_and_url_regeneration(
        console, organisation, django_capture_on_commit_callbacks):
    client = Client()  # the invitee's browser (`console` is the administrator's)
    user = UserFactory(email="nadia@example.com", no_password=True)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(USERS, action("send_invitations", user, confirmed=True))
    first, = links_in_outbox()
    invitation = Invitation.objects.get(user=user)

    assert "Choose your password" in client.get(first).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        console.post(page(invitation, "resend"))
    _, second = links_in_outbox()

    replaced = client.get(first)
    assert replaced.status_code == 410
    assert "This invitation link was replaced" in replaced.content.decode()
    assert "Choose your password" not in replaced.content.decode()
    assert "Choose your password" in client.get(second).content.decode()

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            console.post("/admin/accounts/organisation/regenerate/")
    _, _, third, fourth = links_in_outbox()

    for old in (first, second, third):
        response = client.post(old, {"new_password1": "Lantern-Orchard-1987", "new_password2": "Lantern-Orchard-1987"})
        assert response.status_code == 410 and "was replaced" in response.content.decode()
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert "Choose your password" in client.get(fourth).content.decode()


def test_a_new_invitation_replaces_the_links_of_a_revoked_one(console, organisation,
                                                              django_capture_on_commit_callbacks):
    client = Client()
    user = UserFactory(email="nadia@example.com", no_password=True)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(USERS, action("send_invitations", user, confirmed=True))
    console.post(page(Invitation.objects.get(user=user), "revoke"))
    with django_capture_on_commit_callbacks(execute=True):
        console.post(USERS, action("send_invitations", user, confirmed=True))
    old, new = links_in_outbox()

    assert "was replaced" in client.get(old).content.decode()
    assert "Choose your password" in client.get(new).content.decode()


def test_a_newer_email_that_was_never_delivered_replaces_nothing(client, organisation):
    from tests.test_portal_invitation import link_for

    invitation = InvitationFactory(user=UserFactory(no_password=True))
    link = link_for(invitation)
    InvitationEmail.objects.create(invitation=invitation, status=InvitationEmail.Status.FAILED)

    assert "Choose your password" in client.get(link).content.decode()


def test_a_revoked_invitation_offers_neither_resend_nor_revoke_but_says_why(console, db):
    invitation = InvitationFactory(revoked=True)

    html = console.get(page(invitation)).content.decode()

    assert "invitation-resend" not in html and "invitation-revoke" not in html
    assert 'id="cannot-resend"' in html
