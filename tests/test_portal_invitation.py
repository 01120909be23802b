"""/invite/<token>: following an invitation link, in every state the token can be in."""
import secrets
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from invitations import sending
from invitations.models import Invitation, hash_token
from tests.factories import PASSWORD, InvitationEmailFactory, InvitationFactory, UserFactory

NEW_PASSWORD = "Lantern-Orchard-1987"


def link_for(invitation):
    """Give the invitation a sent email and return its link (as sending.claim does)."""
    raw = secrets.token_urlsafe(32)
    InvitationEmailFactory(invitation=invitation, token_hash=hash_token(raw), status="sent")
    return reverse("invitations:accept", args=[raw])


def signed_in_user(client):
    return client.get(reverse("invitations:enroll")).wsgi_request.user


@pytest.fixture
def newcomer(db):
    return UserFactory(email="new@example.com", display_name="Nadia", no_password=True)


# The trio: anonymous, wrong user, right user.

def test_invitation_page_asks_anonymous_newcomer_to_choose_a_password(client, organisation, newcomer):
    invitation = InvitationFactory(user=newcomer)

    response = client.get(link_for(invitation))

    assert response.status_code == 200
    assert "Choose your password" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPENED and invitation.opened_at


def test_invitation_page_refuses_another_signed_in_user(client, organisation, alice, bob):
    invitation = InvitationFactory(user=alice)
    client.force_login(bob)

    response = client.post(link_for(invitation))

    assert response.status_code == 403
    assert "another account" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and invitation.opened_at is None
    assert signed_in_user(client) == bob


def test_invitation_page_lets_signed_in_invitee_continue(client, organisation, alice):
    invitation = InvitationFactory(user=alice)
    client.force_login(alice)
    link = link_for(invitation)

    assert "Continue to my enrollment page" in client.get(link).content.decode()
    response = client.post(link)

    assert response.status_code == 302 and response.url == reverse("invitations:enroll")
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED


# Token states.

def test_unknown_token_shows_link_not_valid(client, db):
    response = client.get(reverse("invitations:accept", args=["not-a-real-token"]))

    assert response.status_code == 404
    assert "This link is not valid" in response.content.decode()


def test_overlong_token_shows_link_not_valid(client, db):
    response = client.get(reverse("invitations:accept", args=["x" * 500]))

    assert response.status_code == 404


def test_revoked_invitation_says_so_and_what_to_do(client, organisation, newcomer):
    link = link_for(InvitationFactory(user=newcomer, revoked=True))

    response = client.get(link)

    assert response.status_code == 410
    body = response.content.decode()
    assert "This invitation was withdrawn" in body
    assert "ask your administrator for a new invitation" in body


def test_expired_invitation_says_so_and_points_to_go(client, organisation, newcomer):
    link = link_for(InvitationFactory(user=newcomer, expired=True))

    response = client.get(link)

    assert response.status_code == 410
    body = response.content.decode()
    assert "This invitation has expired" in body
    assert f'href="{reverse("invitations:go")}"' in body


def test_used_invitation_says_so_and_points_to_go(client, organisation, alice):
    link = link_for(InvitationFactory(user=alice, accepted=True))

    response = client.get(link)

    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert f'href="{reverse("invitations:go")}"' in response.content.decode()


def test_completed_invitation_counts_as_used(client, organisation, alice):
    invitation = InvitationFactory(user=alice, accepted=True, status=Invitation.Status.COMPLETED,
                                   completed_at=timezone.now())

    assert client.get(link_for(invitation)).status_code == 410


def test_invitation_of_deactivated_user_is_withdrawn(client, organisation):
    invitation = InvitationFactory(user=UserFactory(is_active=False, no_password=True))

    response = client.get(link_for(invitation))

    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()


def test_unavailable_pages_follow_the_invitees_language(client, organisation):
    invitation = InvitationFactory(user=UserFactory(french=True), expired=True)

    response = client.get(link_for(invitation))

    assert "Cette invitation a expiré" in response.content.decode()
    assert response["Content-Language"] == "fr"


# Following a valid invitation.

def test_newcomer_sets_password_accepts_and_lands_on_enroll(client, organisation, newcomer):
    invitation = InvitationFactory(user=newcomer)
    link = link_for(invitation)

    response = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert response.status_code == 302 and response.url == reverse("invitations:enroll")
    newcomer.refresh_from_db()
    assert newcomer.check_password(NEW_PASSWORD)
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED and invitation.accepted_at
    assert AuditEvent.objects.filter(action="invitation.accepted", target_id=str(invitation.pk)).exists()
    assert signed_in_user(client) == newcomer


def test_token_is_single_use(client, organisation, newcomer):
    link = link_for(InvitationFactory(user=newcomer))
    client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    client.post(reverse("invitations:logout"))

    response = client.get(link)

    assert response.status_code == 410
    assert "already been used" in response.content.decode()


@pytest.mark.parametrize("weak", ["short", "password123", "12345678901"])
def test_weak_password_is_refused_and_nothing_is_spent(client, organisation, newcomer, weak):
    invitation = InvitationFactory(user=newcomer)

    response = client.post(link_for(invitation), {"new_password1": weak, "new_password2": weak})

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_mismatched_passwords_are_refused(client, organisation, newcomer):
    response = client.post(link_for(InvitationFactory(user=newcomer)),
                           {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"})

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()


def test_user_with_password_gets_prefilled_sign_in_form(client, organisation, alice):
    response = client.get(link_for(InvitationFactory(user=alice)))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Sign in to continue" in body
    assert 'value="alice@example.com"' in body
    assert "new_password1" not in body


def test_user_with_password_signs_in_accepts_and_lands_on_enroll(client, organisation, alice):
    invitation = InvitationFactory(user=alice)

    response = client.post(link_for(invitation), {"password": PASSWORD})

    assert response.status_code == 302 and response.url == reverse("invitations:enroll")
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert signed_in_user(client) == alice


def test_user_with_password_cannot_sign_in_as_someone_else_through_the_link(client, organisation, alice, bob):
    invitation = InvitationFactory(user=alice)

    client.post(link_for(invitation), {"email": "bob@example.com", "password": PASSWORD})

    assert signed_in_user(client) == alice


def test_wrong_password_on_invitation_is_a_form_error(client, organisation, alice):
    invitation = InvitationFactory(user=alice)

    response = client.post(link_for(invitation), {"password": "not it"})

    assert response.status_code == 200
    assert "This password is not correct" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_wrong_passwords_on_invitation_count_towards_lockout(client, organisation, alice, settings):
    link = link_for(InvitationFactory(user=alice))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(link, {"password": "not it"})

    assert client.post(link, {"password": "not it"}).status_code == 429


def test_invitation_expiring_before_submit_is_not_accepted(client, organisation, newcomer):
    invitation = InvitationFactory(user=newcomer)
    link = link_for(invitation)
    client.get(link)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert response.status_code == 410
    assert "This invitation has expired" in response.content.decode()
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()


def test_link_submitted_twice_at_once_is_spent_only_once(client, organisation, newcomer, monkeypatch):
    invitation = InvitationFactory(user=newcomer)
    link = link_for(invitation)
    # This request read the invitation just before a concurrent one accepted it.
    stale = sending.find_email_by_token(link.rsplit("/", 1)[1])
    Invitation.objects.filter(pk=invitation.pk).update(status=Invitation.Status.ACCEPTED, accepted_at=timezone.now())
    monkeypatch.setattr(sending, "find_email_by_token", lambda token: stale)

    response = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()
    assert not signed_in_user(client).is_authenticated


def test_invitation_page_in_invitees_language(client, organisation):
    invitation = InvitationFactory(user=UserFactory(french=True, no_password=True))

    response = client.get(link_for(invitation), HTTP_ACCEPT_LANGUAGE="en")

    assert "Choisissez votre mot de passe" in response.content.decode()
