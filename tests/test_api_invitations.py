from datetime import timedelta
from smtplib import SMTPRecipientsRefused

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from accounts.models import AuditEvent
from invitations.models import Invitation, InvitationEmail
from tests.api_helpers import client_with_token, make_token
from tests.factories import InvitationEmailFactory, InvitationFactory, UserFactory

pytestmark = pytest.mark.usefixtures("organisation")


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses every recipient."""

    def send_messages(self, messages):
        raise SMTPRecipientsRefused({m.to[0]: (550, b"mailbox unavailable") for m in messages})


@pytest.fixture
def pending(bob):
    return InvitationFactory(user=bob)


def test_invitations_list_shows_display_status_and_user(full_api, pending):
    InvitationFactory(expired=True)

    results = full_api.get("/api/v1/invitations/").json()["results"]

    assert sorted(item["status"] for item in results) == ["expired", "queued"]
    mine = next(item for item in results if item["id"] == pending.pk)
    assert (mine["user"], mine["user_email"]) == (pending.user_id, "bob@example.com")


@pytest.mark.parametrize("wanted, expected", [
    ("queued", {"pending"}), ("expired", {"expired"}), ("revoked", {"revoked"}), ("accepted", {"accepted"}),
])
def test_invitations_list_filters_by_display_status(full_api, wanted, expected):
    made = {"pending": InvitationFactory(), "expired": InvitationFactory(expired=True),
            "revoked": InvitationFactory(revoked=True), "accepted": InvitationFactory(accepted=True)}

    results = full_api.get("/api/v1/invitations/", {"status": wanted}).json()["results"]

    assert {item["id"] for item in results} == {made[name].pk for name in expected}


def test_invitations_list_filters_by_user(full_api, alice, pending):
    alices = InvitationFactory(user=alice)

    results = full_api.get("/api/v1/invitations/", {"user": alice.pk}).json()["results"]

    assert [item["id"] for item in results] == [alices.pk]


@pytest.mark.parametrize("query", [{"status": "lost"}, {"user": "bob"}, {"user": "0"}])
def test_invitations_list_rejects_a_bad_filter(full_api, query):
    response = full_api.get("/api/v1/invitations/", query)

    assert response.status_code == 400
    assert list(response.json()) == list(query)


def test_invitation_retrieve_shows_timestamps_failure_and_emails(full_api, bob):
    sent_at = timezone.now() - timedelta(hours=2)
    invitation = InvitationFactory(user=bob, status=Invitation.Status.FAILED, sent_at=sent_at,
                                   failure_reason="SMTPRecipientsRefused: 550")
    InvitationEmailFactory(invitation=invitation, status=InvitationEmail.Status.FAILED, attempts=5,
                           error="SMTPRecipientsRefused: 550", token_hash="0" * 64)

    body = full_api.get(f"/api/v1/invitations/{invitation.pk}/").json()

    assert body["status"] == "failed"
    assert body["failure_reason"] == "SMTPRecipientsRefused: 550"
    assert body["sent_at"] is not None and body["accepted_at"] is None
    assert body["emails"] == [{
        "id": invitation.emails.get().pk, "reason": "invite", "status": "failed", "attempts": 5,
        "error": "SMTPRecipientsRefused: 550", "queued_at": body["emails"][0]["queued_at"], "sent_at": None,
    }]
    assert "token_hash" not in str(body)


def test_invitation_retrieve_of_unknown_id_is_404(full_api):
    assert full_api.get("/api/v1/invitations/999999/").status_code == 404


def test_invitations_post_sends_an_email_to_each_user(full_api, full_admin, alice, bob,
                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = full_api.post("/api/v1/invitations/", {"users": [alice.pk, bob.pk, alice.pk]}, format="json",
                                 REMOTE_ADDR="198.51.100.4")

    assert response.status_code == 201, response.json()
    assert sorted(item["user_email"] for item in response.json()) == ["alice@example.com", "bob@example.com"]
    assert sorted(message.to[0] for message in mail.outbox) == ["alice@example.com", "bob@example.com"]
    assert "/invite/" in mail.outbox[0].body
    events = AuditEvent.objects.filter(action="invitation.sent")
    assert {(event.actor, event.ip) for event in events} == {(full_admin, "198.51.100.4")}
    assert events.count() == 2
    statuses = full_api.get("/api/v1/invitations/", {"status": "sent"}).json()["results"]
    assert len(statuses) == 2


def test_invitations_post_resends_a_pending_invitation_instead_of_making_another(
        full_api, pending, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = full_api.post("/api/v1/invitations/", {"users": [pending.user_id]}, format="json")

    assert response.status_code == 201
    assert [item["id"] for item in response.json()] == [pending.pk]
    assert Invitation.objects.filter(user=pending.user).count() == 1
    assert len(mail.outbox) == 1


def test_invitations_post_reports_an_smtp_failure_in_the_status(full_api, alice, settings,
                                                                django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    with django_capture_on_commit_callbacks(execute=True):
        created = full_api.post("/api/v1/invitations/", {"users": [alice.pk]}, format="json").json()

    body = full_api.get(f"/api/v1/invitations/{created[0]['id']}/").json()
    assert body["status"] == "failed"
    assert "SMTPRecipientsRefused" in body["failure_reason"]
    assert body["emails"][0]["status"] == "failed"


@pytest.mark.parametrize("payload, message", [
    ({"users": [999999]}, "Unknown user ids: 999999."),
    ({"users": []}, "This list may not be empty."),
    ({"users": ["alice"]}, None),
    ({}, "This field is required."),
])
def test_invitations_post_rejects_bad_user_lists_and_sends_nothing(full_api, alice, payload, message):
    response = full_api.post("/api/v1/invitations/", payload, format="json")

    assert response.status_code == 400
    assert "users" in response.json()
    if message:
        assert response.json()["users"] == [message]
    assert not Invitation.objects.exists()
    assert not InvitationEmail.objects.exists()


def test_invitations_post_with_one_unknown_id_invites_nobody(full_api, alice):
    response = full_api.post("/api/v1/invitations/", {"users": [alice.pk, 999999]}, format="json")

    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_invitations_post_refuses_inactive_users(full_api):
    gone = UserFactory(email="gone@example.com", is_active=False)

    response = full_api.post("/api/v1/invitations/", {"users": [gone.pk]}, format="json")

    assert response.status_code == 400
    assert response.json() == {"users": ["Inactive users cannot be invited: gone@example.com."]}


def test_resend_sends_a_new_email_and_extends_the_expiry(full_api, full_admin, bob,
                                                         django_capture_on_commit_callbacks):
    invitation = InvitationFactory(user=bob, expired=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = full_api.post(f"/api/v1/invitations/{invitation.pk}/resend/")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] in ("queued", "sent")
    invitation.refresh_from_db()
    assert invitation.expires_at > timezone.now()
    assert [message.to for message in mail.outbox] == [["bob@example.com"]]
    assert AuditEvent.objects.filter(action="invitation.resent", actor=full_admin).exists()


@pytest.mark.parametrize("trait, status", [("revoked", "revoked"), ("accepted", "accepted")])
def test_resend_of_a_finished_invitation_is_a_409(full_api, trait, status):
    invitation = InvitationFactory(**{trait: True})

    response = full_api.post(f"/api/v1/invitations/{invitation.pk}/resend/")

    assert response.status_code == 409
    assert response.json() == {"detail": f"This invitation is {status} and cannot be resent."}
    assert not InvitationEmail.objects.exists()


def test_revoke_marks_the_invitation_revoked_and_audits_it(full_api, full_admin, pending):
    response = full_api.post(f"/api/v1/invitations/{pending.pk}/revoke/")

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert response.json()["revoked_at"] is not None
    pending.refresh_from_db()
    assert pending.revoked_at is not None
    assert AuditEvent.objects.filter(action="invitation.revoked", actor=full_admin,
                                     target_id=str(pending.pk)).exists()


@pytest.mark.parametrize("made, status", [
    ({"revoked": True}, "revoked"),
    ({"status": Invitation.Status.COMPLETED}, "completed"),
])
def test_revoke_of_a_revoked_or_completed_invitation_is_a_409(full_api, made, status):
    invitation = InvitationFactory(**made)

    response = full_api.post(f"/api/v1/invitations/{invitation.pk}/revoke/")

    assert response.status_code == 409
    assert response.json() == {"detail": f"This invitation is {status} and cannot be revoked."}
    assert not AuditEvent.objects.filter(action="invitation.revoked").exists()


def test_resend_of_unknown_invitation_is_404(full_api):
    assert full_api.post("/api/v1/invitations/999999/resend/").status_code == 404


def test_invitations_cannot_be_edited_or_deleted_directly(full_api, pending):
    assert full_api.patch(f"/api/v1/invitations/{pending.pk}/", {"status": "completed"}, format="json"
                          ).status_code == 405
    assert full_api.delete(f"/api/v1/invitations/{pending.pk}/").status_code == 405


def test_sending_needs_the_send_invitation_permission_not_only_add_invitation(alice):
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(
        content_type__app_label="invitations", codename__in=["view_invitation", "add_invitation", "change_invitation"]))
    api = client_with_token(make_token(clerk))
    invitation = InvitationFactory(user=alice)

    assert api.post("/api/v1/invitations/", {"users": [alice.pk]}, format="json").status_code == 403
    assert api.post(f"/api/v1/invitations/{invitation.pk}/resend/").status_code == 403
    assert not InvitationEmail.objects.exists()
