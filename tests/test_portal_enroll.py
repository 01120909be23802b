"""/enroll: the server address, what to type, the steps and the one-click link, in the user's language."""
from html import unescape
from urllib.parse import parse_qs

import pytest
from django.urls import reverse

from accounts.models import Organisation
from invitations.sending import regenerate_enrollment_url
from invitations.views import enrollment_link
from tests.factories import UserFactory

ENROLL = reverse("invitations:enroll")


def one_click_href(body):
    start = body.index('href="ms-device-enrollment:')
    return unescape(body[start + len('href="'):body.index('"', start + len('href="'))])


def test_enroll_page_redirects_anonymous_to_sign_in(client, db):
    response = client.get(ENROLL)

    assert response.status_code == 302
    assert response.url == f"{reverse('invitations:login')}?next={ENROLL}"


def test_enroll_page_shows_only_own_details(client, organisation, alice, bob):
    client.force_login(bob)

    body = client.get(ENROLL).content.decode()

    assert "bob@example.com" in body
    assert "alice@example.com" not in body


def test_enroll_page_shows_server_address_email_and_steps(client, organisation, alice):
    client.force_login(alice)

    response = client.get(ENROLL)

    body = response.content.decode()
    assert response.status_code == 200
    assert Organisation.get().enrollment_url in body
    assert "alice@example.com" in body
    assert "Access work or school" in body
    assert "Enroll only in device management" in body
    assert "HoloLens 2" in body
    assert 'data-copy-target="server-address"' in body
    assert "js/copy.js" in body
    # No separate username when it is the email.
    assert "type this username instead" not in body


def test_enroll_page_shows_mdm_username_when_it_differs(client, organisation):
    carol = UserFactory(email="carol@example.com", mdm_username="CORP\\carol")
    client.force_login(carol)

    body = client.get(ENROLL).content.decode()

    assert "CORP\\carol" in body
    assert "type this username instead" in body


def test_one_click_link_is_url_encoded(client, organisation):
    carol = UserFactory(email="carol@example.com", mdm_username="CORP\\carol o'neil")
    client.force_login(carol)

    href = one_click_href(client.get(ENROLL).content.decode())

    scheme, rest = href.split(":", 1)
    assert scheme == "ms-device-enrollment"
    assert rest.startswith("?")
    assert " " not in href and "\\" not in href and "//" not in href
    assert parse_qs(rest[1:]) == {
        "mode": ["mdm"],
        "username": ["CORP\\carol o'neil"],
        "servername": [Organisation.get().enrollment_url],
    }


def test_enrollment_link_percent_encodes_every_value():
    link = enrollment_link("a+b@example.com", "https://mdm.example.com/EnrollmentServer/k/Discovery.svc")

    assert link == ("ms-device-enrollment:?mode=mdm&username=a%2Bb%40example.com"
                    "&servername=https%3A%2F%2Fmdm.example.com%2FEnrollmentServer%2Fk%2FDiscovery.svc")


def test_enroll_page_follows_server_address_changes(client, organisation, alice):
    client.force_login(alice)
    old_url = Organisation.get().enrollment_url
    regenerate_enrollment_url(Organisation.get())

    body = client.get(ENROLL).content.decode()

    assert Organisation.get().enrollment_url in body
    assert old_url not in body


@pytest.mark.parametrize("language, expected, browser", [
    ("fr", "Inscrire votre appareil", "en"),
    ("en", "Enroll your device", "fr"),
])
def test_enroll_page_is_in_the_users_language(client, organisation, language, expected, browser):
    user = UserFactory(language=language, mdm_username="CORP\\dana")
    client.force_login(user)

    response = client.get(ENROLL, HTTP_ACCEPT_LANGUAGE=browser)

    body = response.content.decode()
    assert expected in body
    assert f'<html lang="{language}">' in body
    assert response["Content-Language"] == language
    assert Organisation.get().enrollment_url in body
    assert "CORP\\dana" in body
    assert parse_qs(one_click_href(body).split("?", 1)[1])["username"] == ["CORP\\dana"]


def test_enroll_page_in_french_has_translated_steps(client, organisation):
    client.force_login(UserFactory(french=True))

    body = client.get(ENROLL).content.decode()

    assert "Accès professionnel ou scolaire" in body
    assert "Adresse du serveur" in body


def test_anonymous_pages_follow_accept_language(client, db):
    response = client.get(reverse("invitations:login"), HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")

    assert "Se connecter" in response.content.decode()
    assert response["Content-Language"] == "fr"
