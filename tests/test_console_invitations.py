from smtplib import SMTPRecipientsRefused

from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend

from accounts.models import AuditEvent
from invitations.models import Invitation, InvitationEmail
from tests.console_fixtures import action, messages_of
from tests.factories import InvitationEmailFactory, InvitationFactory

INVITATIONS = "/admin/invitations/invitation/"


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses every recipient."""

    def send_messages(self, messages):
        raise SMTPRecipientsRefused({m.to[0]: (550, b"5.1.1 mailbox unavailable") for m in messages})


def statuses(response):
    return [invitation.display_status for invitation in response.context["cl"].result_list]


def test_invitations_list_redirects_anonymous(client, db):
    assert client.get(INVITATIONS)["Location"].startswith("/admin/login/")


def test_invitations_list_refuses_users_without_console_access(client, alice):
    client.force_login(alice)
    assert client.get(INVITATIONS)["Location"].startswith("/admin/login/")


def test_invitations_list_shows_the_smtp_reason_of_a_failed_email(console, alice, organisation, settings,
                                                                   django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.test_console_invitations.RefusingBackend"
    with django_capture_on_commit_callbacks(execute=True):
        console.post("/admin/accounts/user/", action("send_invitations", alice, confirmed=True))

    response = console.get(INVITATIONS)

    assert statuses(response) == ["failed"]
    html = response.content.decode()
    assert "SMTPRecipientsRefused" in html
    assert "5.1.1 mailbox unavailable" in html


def test_invitations_list_filters_by_status_including_expired(console, db):
    InvitationFactory()
    InvitationFactory(expired=True)
    InvitationFactory(revoked=True)
    assert statuses(console.get(INVITATIONS, {"status": "expired"})) == ["expired"]
    assert statuses(console.get(INVITATIONS, {"status": "queued"})) == ["queued"]
    assert statuses(console.get(INVITATIONS, {"status": "revoked"})) == ["revoked"]


def test_invitation_page_shows_its_emails_read_only(console, db):
    invitation = InvitationFactory()
    InvitationEmailFactory(invitation=invitation, status=InvitationEmail.Status.FAILED, attempts=3,
                           error="SMTPServerDisconnected: Connection unexpectedly closed")
    url = f"{INVITATIONS}{invitation.pk}/change/"

    response = console.get(url)

    assert response.status_code == 200
    assert b"SMTPServerDisconnected: Connection unexpectedly closed" in response.content
    assert b'name="_save"' not in response.content
    assert console.post(url, {"status": "completed"}).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.QUEUED


def test_invitations_cannot_be_added_or_deleted_by_hand(console, db):
    invitation = InvitationFactory()
    assert console.get(f"{INVITATIONS}add/").status_code == 403
    assert console.post(f"{INVITATIONS}{invitation.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_resend_action_sends_a_new_email(console, organisation, django_capture_on_commit_callbacks):
    invitation = InvitationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(INVITATIONS, action("resend", invitation), follow=True, REMOTE_ADDR="192.0.2.1")
    assert "Invitation resent to 1 user." in messages_of(response)
    assert [m.to[0] for m in mail.outbox] == [invitation.user.email]
    assert AuditEvent.objects.filter(action="invitation.resent", ip="192.0.2.1").count() == 1


def test_resend_of_a_revoked_invitation_is_refused_with_a_message(console, organisation,
                                                                  django_capture_on_commit_callbacks):
    revoked, pending = InvitationFactory(revoked=True), InvitationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(INVITATIONS, action("resend", revoked, pending), follow=True)
    assert response.status_code == 200
    assert "Invitation resent to 1 user." in messages_of(response)
    assert (f"{revoked.user.email}: This invitation was revoked: its links no longer work. Send a new invitation: "
            "on the Users list, select the user and choose “Send invitation”." in messages_of(response))
    assert [m.to[0] for m in mail.outbox] == [pending.user.email]


def test_revoke_action_revokes_and_audits(console, db):
    invitation = InvitationFactory()
    response = console.post(INVITATIONS, action("revoke", invitation, confirmed=True), follow=True, REMOTE_ADDR="192.0.2.2")
    assert "1 invitation revoked." in messages_of(response)
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert AuditEvent.objects.get(action="invitation.revoked").ip == "192.0.2.2"


def test_revoking_an_already_revoked_invitation_gives_a_message(console, db):
    invitation = InvitationFactory(revoked=True)
    response = console.post(INVITATIONS, action("revoke", invitation, confirmed=True), follow=True)
    assert response.status_code == 200
    assert messages_of(response) == [f"{invitation.user.email}: This invitation is already revoked. Nothing to do: "
                                     "its links no longer work."]
    assert not AuditEvent.objects.filter(action="invitation.revoked").exists()


def test_enrollment_admin_resends_and_revokes(client, enrollment_admin, organisation,
                                              django_capture_on_commit_callbacks):
    client.force_login(enrollment_admin)
    first, second = InvitationFactory(), InvitationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(INVITATIONS, action("resend", first))
        client.post(INVITATIONS, action("revoke", second, confirmed=True))
    assert len(mail.outbox) == 1
    second.refresh_from_db()
    assert second.status == Invitation.Status.REVOKED


def test_helpdesk_sees_invitations_but_cannot_resend_or_revoke(client, helpdesk, organisation,
                                                               django_capture_on_commit_callbacks):
    client.force_login(helpdesk)
    invitation = InvitationFactory()
    page = client.get(INVITATIONS)
    assert page.status_code == 200
    assert b'value="resend"' not in page.content
    assert b'value="revoke"' not in page.content

    with django_capture_on_commit_callbacks(execute=True):
        client.post(INVITATIONS, action("resend", invitation))
        client.post(INVITATIONS, action("revoke", invitation, confirmed=True))

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.QUEUED
    assert mail.outbox == []
