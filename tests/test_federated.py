import re
from html import unescape

import pytest
from django.test import Client

from enrollment import auth
from enrollment.models import Device
from tests.enrollment_soap import (
    b64, fault_of, fixture, get_policies_token_body, parse, post, rst_body, service_url, token_security, windows_csr,
)
from tests.factories import PASSWORD, RetiredEnrollmentKeyFactory, UserFactory
from tests.factories_enrollment import create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

APPRU = "ms-app://windows.immersivecontrolpanel"


@pytest.fixture(autouse=True)
def federated(organisation):
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])


@pytest.fixture
def signin_url(organisation):
    return service_url(organisation, "signin")


def sign_in(client, url, username="alice@example.com", password=PASSWORD, appru=APPRU):
    return client.post(url, {"username": username, "password": password, "appru": appru}, secure=True)


def wresult(response):
    match = re.search(r'name="wresult" value="([^"]+)"', response.content.decode())
    assert match, response.content.decode()[:1000]
    return unescape(match.group(1))


def enroll_with(client, organisation, token, device_key=30):
    body = rst_body(token_security(token), windows_csr(rsa_key(device_key)))
    return post(client, service_url(organisation, "enrollment"), body)


# The sign-in page: anonymous visitor, wrong credentials, right user.

def test_sign_in_page_shows_the_form_with_the_login_hint(client, signin_url):
    response = client.get(signin_url, {"appru": APPRU, "login_hint": "alice@example.com"}, secure=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="alice@example.com"' in html and 'type="password"' in html
    assert f'value="{APPRU}"' in html
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_sign_in_with_wrong_password_shows_an_error_and_no_token(client, signin_url, alice):
    response = sign_in(client, signin_url, password="wrong password")
    assert response.status_code == 200
    assert b"incorrect" in response.content
    assert b"wresult" not in response.content


def test_sign_in_with_disabled_account_says_not_allowed(client, signin_url):
    UserFactory(email="dave@example.com", is_active=False)
    response = sign_in(client, signin_url, username="dave@example.com")
    assert b"not allowed" in response.content and b"wresult" not in response.content


def test_sign_in_posts_a_token_back_to_appru_with_a_nonced_script(client, signin_url, alice):
    response = sign_in(client, signin_url, username="ALICE@example.com")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'action="{APPRU}"' in html
    assert wresult(response)
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in html
    assert 'type="submit"' in html  # works without script too


def test_sign_in_accepts_the_mdm_username(client, signin_url):
    UserFactory(email="carol@example.com", mdm_username="CORP\\carol")
    assert wresult(sign_in(client, signin_url, username="corp\\carol"))


@pytest.mark.parametrize("appru", ["https://evil.example.com/steal", "javascript:alert(1)", "", "ms-app://",
                                   "ms-app://x y"])
def test_sign_in_refuses_return_addresses_other_than_ms_app(client, signin_url, alice, appru):
    response = client.get(signin_url, {"appru": appru}, secure=True)
    assert response.status_code == 400
    assert b"invalid return address" in response.content
    if appru:
        assert appru.encode() not in response.content
    posted = sign_in(client, signin_url, appru=appru)
    assert posted.status_code == 400 and b"wresult" not in posted.content


def test_sign_in_page_escapes_everything_it_echoes(client, signin_url, alice):
    hint = '"><script>alert(1)</script>'
    appru = 'ms-app://x"><script>alert(2)</script>'
    html = client.get(signin_url, {"appru": appru, "login_hint": hint}, secure=True).content.decode()
    assert "<script>alert" not in html
    assert "&quot;&gt;&lt;script&gt;alert(1)" in html
    done = sign_in(client, signin_url, appru=appru).content.decode()
    assert "<script>alert" not in done


def test_sign_in_page_on_retired_key_says_ask_for_a_new_invitation(client, organisation, alice):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    response = client.get("/EnrollmentServer/oldkey1234567890/SignIn", {"appru": APPRU}, secure=True)
    assert response.status_code == 410 and b"new invitation" in response.content


def test_sign_in_form_is_csrf_protected(signin_url, alice):
    response = sign_in(Client(enforce_csrf_checks=True), signin_url)
    assert response.status_code == 403


def test_sign_in_works_like_a_browser_over_https_with_csrf_checks(signin_url, alice):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(signin_url, {"appru": APPRU}, secure=True)
    assert page["Referrer-Policy"] == "same-origin"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = browser.post(signin_url, {"username": "alice@example.com", "password": PASSWORD, "appru": APPRU,
                                         "csrfmiddlewaretoken": token},
                            secure=True, HTTP_ORIGIN="https://testserver", HTTP_REFERER=f"https://testserver{signin_url}")
    assert wresult(response)


def test_repeated_failures_lock_the_sign_in_page(client, signin_url, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, signin_url, password="wrong password")
    response = sign_in(client, signin_url)
    assert b"Too many" in response.content and b"wresult" not in response.content


# The token in GetPolicies and RST.

def test_token_enrolls_through_policy_and_enrollment_then_dies(client, organisation, signin_url, alice):
    create_ca_chain()
    token = wresult(sign_in(client, signin_url))
    policies = parse(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert policies.find(".//{http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy}policies") is not None
    parse(enroll_with(client, organisation, token))
    device = Device.objects.get()
    assert device.method == Device.Method.FEDERATED and device.user == alice and device.upn == alice.email

    subcode, _reason, _type = fault_of(enroll_with(client, organisation, token, device_key=31))
    assert subcode == "s:Authentication"
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert subcode == "s:Authentication"
    assert Device.objects.count() == 1


def test_expired_token_is_refused(client, organisation, alice, settings):
    create_ca_chain()
    token = auth.issue_token(alice)
    settings.ENROLLMENT_FEDERATED_TOKEN_SECONDS = -1
    subcode, _reason, _type = fault_of(enroll_with(client, organisation, token))
    assert subcode == "s:Authentication"
    assert Device.objects.count() == 0


@pytest.mark.parametrize("token", ["not-a-token", "eyJ1IjoxfQ:1abc:forged", "\u00e9t\u00e9"])
def test_forged_token_is_refused(client, organisation, alice, token):
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert subcode == "s:Authentication"


def test_token_of_a_disabled_user_is_refused(client, organisation, alice):
    token = auth.issue_token(alice)
    alice.is_active = False
    alice.save()
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert subcode == "s:Authorization"


def test_token_is_refused_when_passwords_are_the_policy(client, organisation, alice):
    organisation.auth_policy = "onpremise"
    organisation.save(update_fields=["auth_policy"])
    token = auth.issue_token(alice)
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert subcode == "s:Authentication"


def test_token_with_qualified_value_type_is_read(client, organisation, alice):
    body = fixture("get_policies_token.xml", token=b64(auth.issue_token(alice))).replace(
        ' ValueType="', ' wsse:ValueType="').encode()
    assert parse(post(client, service_url(organisation, "policy"), body)) is not None
