"""The invitation emails: subject, text and HTML, in the user's language, with a working link."""
import re
import secrets
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail

from accounts.models import Organisation
from invitations import sending
from invitations.models import Invitation, InvitationEmail
from tests.factories import InvitationEmailFactory, InvitationFactory, UserFactory


def invite_and_capture(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([user])
    assert len(mail.outbox) == 1
    return mail.outbox[0]


def html_part(message):
    (html, mimetype), = message.alternatives
    assert mimetype == "text/html"
    return html


def invitation_link(text):
    match = re.search(re.escape(settings.PORTAL_URL) + r"/invite/[\w-]+", text)
    assert match, text
    return match.group(0)


def test_invitation_email_in_english(organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="eve@example.com", display_name="Eve")

    message = invite_and_capture(user, django_capture_on_commit_callbacks)

    enrollment_url = Organisation.get().enrollment_url
    assert message.to == ["eve@example.com"]
    assert message.subject == "Contoso: enroll your device"
    assert "Hello Eve," in message.body
    assert "invites you to enroll your Windows PC or HoloLens 2" in message.body
    assert enrollment_url in message.body
    assert settings.PORTAL_URL + "/go" in message.body
    html = html_part(message)
    assert '<html lang="en">' in html
    assert enrollment_url in html
    assert f'href="{invitation_link(message.body)}"' in html


def test_invitation_email_in_french(organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="eve@example.com", display_name="Ève", french=True)

    message = invite_and_capture(user, django_capture_on_commit_callbacks)

    assert message.subject == "Contoso : inscrivez votre appareil"
    assert "Bonjour Ève," in message.body
    assert "vous invite à inscrire votre PC Windows ou votre HoloLens 2" in message.body
    assert Organisation.get().enrollment_url in message.body
    html = html_part(message)
    assert '<html lang="fr">' in html
    assert "Commencer" in html
    assert Organisation.get().enrollment_url in html


def test_invitation_link_in_email_opens_the_invitation(client, organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="eve@example.com", no_password=True)

    message = invite_and_capture(user, django_capture_on_commit_callbacks)
    response = client.get(urlsplit(invitation_link(message.body)).path)

    assert response.status_code == 200
    assert "Choose your password" in response.content.decode()
    assert Invitation.objects.get(user=user).status == Invitation.Status.OPENED


def test_email_shows_mdm_username_when_it_differs(organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="carol@example.com", mdm_username="CORP\\carol")

    message = invite_and_capture(user, django_capture_on_commit_callbacks)

    assert "type: CORP\\carol" in message.body
    assert "<strong>CORP\\carol</strong>" in html_part(message)


def test_email_escapes_display_name_in_html_only(organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="mallory@example.com", display_name='<script>x</script> O\'Brien & "Co"')

    message = invite_and_capture(user, django_capture_on_commit_callbacks)

    html = html_part(message)
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt; O&#x27;Brien &amp; &quot;Co&quot;" in html
    # Plain text is not HTML: the name appears as typed, not as entities.
    assert 'Hello <script>x</script> O\'Brien & "Co",' in message.body


def test_email_escapes_organisation_name_in_html(django_capture_on_commit_callbacks, db):
    Organisation.objects.create(pk=1, name="A&B <Labs>", enrollment_key="k" * 16)
    user = UserFactory(email="eve@example.com")

    message = invite_and_capture(user, django_capture_on_commit_callbacks)

    assert message.subject == "A&B <Labs>: enroll your device"
    assert "<Labs>" not in html_part(message)
    assert "A&amp;B &lt;Labs&gt;" in html_part(message)


@pytest.mark.parametrize("language, subject, changed", [
    ("en", "Contoso: new device enrollment address", "has changed the address of its device enrollment server"),
    ("fr", "Contoso : nouvelle adresse d’inscription des appareils", "a changé l’adresse de son serveur d’inscription"),
])
def test_reissue_email_says_the_address_changed(organisation, language, subject, changed):
    invitation = InvitationFactory(user=UserFactory(language=language))
    email = InvitationEmailFactory(invitation=invitation, reason=InvitationEmail.Reason.REISSUE)

    message = sending.build_message(email, secrets.token_urlsafe(32))

    assert message.subject == subject
    assert changed in message.body
    assert changed in html_part(message).replace("&#x27;", "’")
    assert Organisation.get().enrollment_url in message.body


def test_first_invitation_does_not_mention_an_address_change(organisation):
    email = InvitationEmailFactory(invitation=InvitationFactory())

    message = sending.build_message(email, secrets.token_urlsafe(32))

    assert "changed" not in message.body
    assert "changed" not in message.subject


def test_regenerated_url_reaches_pending_invitees(organisation, django_capture_on_commit_callbacks):
    user = UserFactory(email="eve@example.com")
    invite_and_capture(user, django_capture_on_commit_callbacks)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        sending.regenerate_enrollment_url(Organisation.get())

    message, = mail.outbox
    assert message.subject == "Contoso: new device enrollment address"
    assert Organisation.get().enrollment_url in message.body
