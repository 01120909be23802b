"""The registration PIN on /enroll: shown once when the user has none usable, "Request a new PIN"
(POST, only when the user's settings allow it), nothing for password users; and in the invitation
email (fr/en), generated as the email is sent."""
import re
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent
from enrollment.models import RegistrationPin
from enrollment.pins import matching_pin
from invitations import sending
from invitations.models import InvitationEmail
from tests.factories import UserFactory, UserGroupFactory
from tests.factories_enrollment import RegistrationPinFactory

ENROLL = reverse("invitations:enroll")
REQUEST_PIN = reverse("invitations:request_pin")
PIN_ON_PAGE = re.compile(r'id="registration-pin">(\d+)<')


def shown_pin(response):
    match = PIN_ON_PAGE.search(response.content.decode())
    return match.group(1) if match else None


@pytest.fixture
def pin_mode(organisation):
    organisation.registration_mode = "pin"
    organisation.save()
    return organisation


# /enroll and "Request a new PIN": anonymous, wrong user, right user

def test_request_pin_redirects_anonymous_to_sign_in(client, pin_mode):
    response = client.post(REQUEST_PIN)
    assert response.status_code == 302 and response.url.startswith(reverse("invitations:login"))
    assert not RegistrationPin.objects.exists()


def test_request_pin_is_refused_when_the_users_group_forbids_renewal(client, pin_mode, alice):
    UserGroupFactory(pin_only=True, no_renewal=True, members=[alice])
    original = RegistrationPinFactory(user=alice, raw="11112222")
    client.force_login(alice)

    assert 'id="request-pin"' not in client.get(ENROLL).content.decode()
    response = client.post(REQUEST_PIN)

    assert response.status_code == 403
    assert shown_pin(response) is None
    assert "does not let you request a new PIN" in response.content.decode()
    assert list(RegistrationPin.objects.usable()) == [original]


def test_request_pin_is_refused_to_password_users(client, organisation, alice):
    client.force_login(alice)
    response = client.post(REQUEST_PIN)
    assert response.status_code == 403
    assert not RegistrationPin.objects.exists()


def test_request_pin_replaces_the_pin_and_shows_the_new_one_once(client, pin_mode, alice):
    old = RegistrationPinFactory(user=alice, raw="11112222")
    client.force_login(alice)

    response = client.post(REQUEST_PIN, REMOTE_ADDR="203.0.113.20")

    assert response.status_code == 200
    new = shown_pin(response)
    assert new and len(new) == pin_mode.pin_length
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert matching_pin(alice, new) is not None
    event = AuditEvent.objects.get(action="registration_pin.renewed")
    assert (event.actor, event.ip) == (alice, "203.0.113.20")
    assert shown_pin(client.get(ENROLL)) is None  # never shown again
    assert response["Cache-Control"].startswith("max-age=0")


def test_request_pin_only_answers_post(client, pin_mode, alice):
    client.force_login(alice)
    assert client.get(REQUEST_PIN).status_code == 405


def test_enroll_page_issues_and_shows_a_pin_once_when_the_user_has_none(client, pin_mode, alice):
    client.force_login(alice)

    first = client.get(ENROLL)
    pin = shown_pin(first)

    assert pin and matching_pin(alice, pin) is not None
    assert "shown only once" in first.content.decode()
    second = client.get(ENROLL).content.decode()
    assert PIN_ON_PAGE.search(second) is None
    assert "Use the PIN from your invitation email" in second
    assert AuditEvent.objects.filter(action="registration_pin.issued", target_id=str(alice.pk)).count() == 1


def test_enroll_page_shows_a_new_pin_after_the_last_one_enrolled_a_device(client, pin_mode, alice):
    RegistrationPinFactory(user=alice).consume(None)
    client.force_login(alice)
    assert shown_pin(client.get(ENROLL))


def test_enroll_page_of_password_users_shows_no_pin(client, organisation, alice):
    client.force_login(alice)
    body = client.get(ENROLL).content.decode()
    assert "Registration PIN" not in body and 'id="request-pin"' not in body
    assert not RegistrationPin.objects.exists()


def test_enroll_page_explains_pin_and_password_in_french(client, organisation):
    user = UserFactory(email="eve@example.com", french=True)
    UserGroupFactory(pin_and_password=True, members=[user])
    client.force_login(user)
    body = client.get(ENROLL).content.decode()
    assert "Code PIN d’inscription" in body
    assert "Windows ouvre une page de connexion : saisissez votre mot de passe et votre code PIN" in body
    assert "Notez-le maintenant" in body


# The invitation email

def invite(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([user])
    assert len(mail.outbox) == 1
    return mail.outbox[0]


def pin_in(text):
    match = re.search(r"(?:Your registration PIN|Votre code PIN d’inscription) : ?(\d+)", text)
    return match.group(1) if match else None


def test_invitation_email_shows_a_working_pin_in_english(pin_mode, alice, django_capture_on_commit_callbacks):
    message = invite(alice, django_capture_on_commit_callbacks)

    pin = re.search(r"Your registration PIN: (\d+)", message.body).group(1)
    assert matching_pin(alice, pin) is not None
    assert "Type it when Windows asks for your password or PIN." in message.body
    (html, _mimetype), = message.alternatives
    assert 'id="registration-pin"' in html and pin in html
    assert RegistrationPin.objects.get().pin_hash != pin


def test_invitation_email_shows_the_pin_in_french_for_pin_and_password(organisation,
                                                                      django_capture_on_commit_callbacks):
    user = UserFactory(email="eve@example.com", french=True)
    UserGroupFactory(pin_and_password=True, members=[user])

    message = invite(user, django_capture_on_commit_callbacks)

    pin = re.search(r"Votre code PIN d’inscription : (\d+)", message.body).group(1)
    assert matching_pin(user, pin) is not None
    assert "Windows ouvre une page de connexion : saisissez votre mot de passe et ce code PIN." in message.body


def test_invitation_email_of_password_users_has_no_pin(organisation, alice, django_capture_on_commit_callbacks):
    message = invite(alice, django_capture_on_commit_callbacks)
    assert "PIN" not in message.body
    assert not RegistrationPin.objects.exists()


def test_pin_is_made_when_the_email_is_sent_never_in_the_task_message(pin_mode, alice,
                                                                      django_capture_on_commit_callbacks):
    from invitations import tasks

    with mock.patch.object(tasks.send_invitation_email, "delay", autospec=True) as delay:
        with django_capture_on_commit_callbacks(execute=True):
            sending.invite([alice])
    email = InvitationEmail.objects.get()
    delay.assert_called_once_with(email.pk)
    assert not RegistrationPin.objects.exists()

    sending.deliver(email.pk)
    assert RegistrationPin.objects.usable().filter(user=alice).count() == 1


def test_each_email_replaces_the_pin_and_an_unsent_one_is_dropped(pin_mode, alice,
                                                                  django_capture_on_commit_callbacks):
    first = pin_in(invite(alice, django_capture_on_commit_callbacks).body)
    invitation = alice.invitations.get()
    email = sending.resend(invitation)
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=OSError("SMTP down")):
        with pytest.raises(OSError):
            sending.deliver(email.pk)
    assert matching_pin(alice, first) is None
    assert not RegistrationPin.objects.usable().exists()
