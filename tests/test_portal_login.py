"""/login and /logout: email or MDM username, safe `next`, lockout per account and per address."""
import pytest
from django.test import override_settings
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory

LOGIN = reverse("invitations:login")


def sign_in(client, identity, password=PASSWORD, **extra):
    return client.post(LOGIN, {"identity": identity, "password": password}, **extra)


def signed_in_user(client):
    return client.get(reverse("invitations:enroll")).wsgi_request.user


def test_login_page_renders_for_anonymous(client, db):
    response = client.get(LOGIN)

    assert response.status_code == 200
    assert 'name="identity"' in response.content.decode()


def test_login_page_redirects_user_already_signed_in(client, alice):
    client.force_login(alice)

    response = client.get(LOGIN)

    assert response.status_code == 302
    assert response.url == reverse("invitations:enroll")


def test_login_page_ignores_next_back_to_itself_for_signed_in_user(client, alice):
    client.force_login(alice)

    response = client.get(f"{LOGIN}?next={LOGIN}")

    assert response.status_code == 302
    assert response.url == reverse("invitations:enroll")


def test_login_with_email_signs_in_and_goes_to_enroll(client, organisation, alice):
    response = sign_in(client, "Alice@Example.com")

    assert response.status_code == 302
    assert response.url == reverse("invitations:enroll")
    assert signed_in_user(client) == alice


def test_login_with_mdm_username_signs_in_the_same_account(client, organisation):
    carol = UserFactory(email="carol@example.com", mdm_username="CORP\\carol")

    response = sign_in(client, "corp\\carol")

    assert response.status_code == 302
    assert signed_in_user(client) == carol


def test_login_with_wrong_password_shows_form_error(client, alice):
    response = sign_in(client, "alice@example.com", "not the password")

    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert not signed_in_user(client).is_authenticated


def test_login_with_unknown_identity_shows_the_same_error(client, db):
    response = sign_in(client, "nobody@example.com", "whatever password")

    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()


def test_login_with_empty_form_shows_field_errors(client, db):
    response = client.post(LOGIN, {})

    assert response.status_code == 200
    assert response.content.decode().count('class="errorlist') >= 2


def test_login_refuses_inactive_user(client, db):
    UserFactory(email="gone@example.com", is_active=False)

    response = sign_in(client, "gone@example.com")

    assert response.status_code == 200
    assert not signed_in_user(client).is_authenticated


def test_login_follows_local_next(client, organisation, alice):
    response = client.post(f"{LOGIN}?next=/go", {"identity": "alice@example.com", "password": PASSWORD})

    assert response.url == "/go"


@pytest.mark.parametrize("next_url", ["https://evil.example.com/", "//evil.example.com/x", "https:evil.example.com"])
def test_login_refuses_next_to_another_site(client, organisation, alice, next_url):
    response = client.post(LOGIN, {"identity": "alice@example.com", "password": PASSWORD, "next": next_url})

    assert response.status_code == 302
    assert response.url == reverse("invitations:enroll")


def test_logout_signs_out_on_post(client, alice):
    client.force_login(alice)

    response = client.post(reverse("invitations:logout"))

    assert response.status_code == 302
    assert response.url == LOGIN
    assert not signed_in_user(client).is_authenticated


def test_logout_refuses_get(client, alice):
    client.force_login(alice)

    response = client.get(reverse("invitations:logout"))

    assert response.status_code == 405
    assert signed_in_user(client) == alice


@override_settings(AXES_FAILURE_LIMIT=3)
def test_account_locks_after_failures_whichever_identity_and_address(client, organisation):
    UserFactory(email="carol@example.com", mdm_username="CORP\\carol")
    # Failures spread over both identities and three addresses still count against one account.
    sign_in(client, "carol@example.com", "wrong-1", REMOTE_ADDR="10.0.0.1")
    sign_in(client, "CORP\\carol", "wrong-2", REMOTE_ADDR="10.0.0.2")
    locked = sign_in(client, "corp\\carol", "wrong-3", REMOTE_ADDR="10.0.0.3")

    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    # Even the right password from a fresh address is refused while the account is locked.
    response = sign_in(client, "carol@example.com", REMOTE_ADDR="10.0.0.4")
    assert response.status_code == 429
    assert not signed_in_user(client).is_authenticated


@override_settings(AXES_FAILURE_LIMIT=3)
def test_address_locks_after_failures_across_accounts(client, organisation, alice):
    for n in range(3):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR="10.0.0.9")

    response = sign_in(client, "alice@example.com", REMOTE_ADDR="10.0.0.9")

    assert response.status_code == 429
    assert not signed_in_user(client).is_authenticated
    # Another address can still sign in to the account: only the guessing address is locked.
    assert sign_in(client, "alice@example.com", REMOTE_ADDR="10.0.0.10").status_code == 302


def test_lockout_uses_configured_limit(client, organisation, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "alice@example.com", "wrong").status_code == 200

    assert sign_in(client, "alice@example.com", "wrong").status_code == 429


def test_lockout_page_is_translated(client, organisation, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, "alice@example.com", "wrong", HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 429
    assert "Trop de tentatives de connexion" in response.content.decode()
