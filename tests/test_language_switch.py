"""The language switch of the end-user pages (templates/_partials/language_form.html): a plain form
posting to Django's set_language (no script, so the Content-Security-Policy needs nothing), the choice
remembered in the language cookie and, for a signed-in person, in the account."""
import re
import secrets

import pytest
from django.conf import settings
from django.urls import reverse

from invitations.models import hash_token
from tests.enrollment_soap import service_url
from tests.factories import InvitationEmailFactory, InvitationFactory, UserFactory

LOGIN = reverse("invitations:login")
ENROLL = reverse("invitations:enroll")
SWITCH = reverse("invitations:set_language")


def page(response):
    return response.content.decode()


def switch_form(html):
    """(action, next, [(language, label)]) of the page's language switch."""
    form = re.search(r'<form class="language-switch" method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form, "no language switch on the page"
    next_url = re.search(r'name="next" value="([^"]*)"', form.group(2)).group(1)
    buttons = re.findall(r'<button type="submit" name="language" value="(\w+)"[^>]*>([^<]+)</button>', form.group(2))
    return form.group(1), next_url, buttons


def test_the_sign_in_page_offers_french_and_remembers_it(client, organisation):
    action, next_url, buttons = switch_form(page(client.get(LOGIN)))
    assert (action, next_url, buttons) == (SWITCH, LOGIN, [("fr", "Français")])
    assert "<script" not in page(client.get(LOGIN))

    response = client.post(action, {"language": "fr", "next": next_url})

    assert response.status_code == 302 and response.url == LOGIN
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    french = client.get(LOGIN)
    assert '<html lang="fr">' in page(french)
    assert "<h1 id=\"page-title\">Se connecter</h1>" in page(french)
    assert switch_form(page(french))[2] == [("en", "English")]


def test_the_switch_overrides_what_the_browser_asks_for(client, organisation):
    client.post(SWITCH, {"language": "en", "next": LOGIN}, HTTP_ACCEPT_LANGUAGE="fr")

    assert '<html lang="en">' in page(client.get(LOGIN, HTTP_ACCEPT_LANGUAGE="fr"))


def test_a_signed_in_user_choice_is_saved_on_the_account(client, organisation):
    alice = UserFactory(email="alice@example.com", language="en")
    client.force_login(alice)
    assert switch_form(page(client.get(ENROLL)))[1] == ENROLL

    response = client.post(SWITCH, {"language": "fr", "next": ENROLL})

    assert response.url == ENROLL
    alice.refresh_from_db()
    assert alice.language == "fr"  # the emails sent to her follow
    assert '<html lang="fr">' in page(client.get(ENROLL))


def test_the_invitation_page_follows_the_browser_choice_over_the_invitee_language(client, organisation):
    invitee = UserFactory(email="new@example.com", no_password=True, language="en")
    raw = secrets.token_urlsafe(32)
    InvitationEmailFactory(invitation=InvitationFactory(user=invitee), token_hash=hash_token(raw), status="sent")
    link = reverse("invitations:accept", args=[raw])
    assert "Choose your password" in page(client.get(link))

    client.post(SWITCH, {"language": "fr", "next": link})

    french = client.get(link)
    assert '<html lang="fr">' in page(french) and french.headers["Content-Language"] == "fr"
    invitee.refresh_from_db()
    assert invitee.language == "en"  # nobody signed in: the account is not touched


@pytest.mark.parametrize("next_url", ["https://attacker.example/", "//attacker.example/go"])
def test_the_switch_never_leads_off_the_site(client, organisation, next_url):
    response = client.post(SWITCH, {"language": "fr", "next": next_url})

    assert response.status_code == 302 and response.url == "/"


def test_an_unknown_language_changes_nothing(client, organisation):
    client.post(SWITCH, {"language": "de", "next": LOGIN})

    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies


def test_the_switch_takes_only_a_post(client, organisation):
    assert client.get(SWITCH).status_code == 405


APPRU = "ms-app://windows.immersivecontrolpanel"  # the broker's return address Windows gives the page


def federated_sign_in(organisation):
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])
    return service_url(organisation, "signin")


def test_the_federated_sign_in_page_switches_language_and_keeps_its_return_address(client, organisation, alice):
    """The page Windows shows while enrolling: the switch comes back to the same address, query included."""
    url = federated_sign_in(organisation)
    page_url = client.get(url, {"appru": APPRU}, secure=True).wsgi_request.get_full_path()
    english = client.get(url, {"appru": APPRU}, secure=True)
    action, next_url, buttons = switch_form(page(english))
    assert next_url == page_url and buttons == [("fr", "Français")]

    response = client.post(action, {"language": "fr", "next": next_url}, secure=True)

    assert response.url == page_url
    french = client.get(response.url, secure=True)
    assert '<html lang="fr">' in page(french)
    assert "Connectez-vous pour inscrire cet appareil" in page(french)


def test_the_federated_sign_in_page_shows_its_refusal_in_french(client, organisation, alice):
    url = federated_sign_in(organisation)
    response = client.post(url, {"username": "alice@example.com", "password": "wrong", "appru": APPRU}, secure=True,
                           HTTP_ACCEPT_LANGUAGE="fr")

    assert "Le nom d’utilisateur ou le mot de passe est incorrect." in page(response)


def test_the_console_switches_language_from_its_user_tools(console, organisation):
    html = page(console.get("/admin/", HTTP_ACCEPT_LANGUAGE="en"))
    form = re.search(r'<form id="console-language" method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form and form.group(1) == SWITCH
    assert re.search(r'<button type="submit" name="language" value="fr" lang="fr">Français</button>', form.group(2))

    console.post(SWITCH, {"language": "fr", "next": "/admin/"})

    french = page(console.get("/admin/", HTTP_ACCEPT_LANGUAGE="en"))
    assert '<html lang="fr"' in french and "Tableau de bord" in french


@pytest.mark.parametrize("name", ["invitations:password_reset", "invitations:password_reset_sent",
                                  "invitations:password_reset_done"])
def test_the_password_pages_offer_the_switch(client, organisation, name):
    url = reverse(name)
    assert switch_form(page(client.get(url)))[1] == url

    client.post(SWITCH, {"language": "fr", "next": url})

    assert '<html lang="fr">' in page(client.get(url))
