"""CSRF and XSS probes on the pages people sign in on (hardening): the federated sign-in
page, /go, /login, /invite/<token> and /enroll. `appru`, `login_hint`, `next` and stored values carry
javascript:, data:, markup, encoded variants and CRLF; nothing comes back unescaped, no redirect
leaves the site, every inline script carries the page's CSP nonce, and the forms refuse a POST
without a CSRF token. (The terms-of-use page is not on main yet: not probed here.)"""
import re
import secrets
from urllib.parse import quote, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Organisation
from invitations.models import hash_token
from tests import fuzzing  # noqa: F401 (loads the hypothesis profile)
from tests.factories import PASSWORD, InvitationEmailFactory, InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db

APPRU = "ms-app://windows.immersivecontrolpanel"
PAYLOADS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    '"><script>alert(1)</script>', "'><img src=x onerror=alert(1)>", "</textarea><svg onload=alert(1)>",
    "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E", "&#x6a;avascript:alert(1)", "\u202e<script>alert(1)</script>",
    'ms-app://x"><script>alert(1)</script>', "ms-app://x' onmouseover='alert(1)", "ms-app://x\r\nSet-Cookie: a=b",
    "ms-app://x%0d%0aSet-Cookie:%20a=b", "//evil.example/", "https://evil.example/", "\\\\evil.example",
    "/\\evil.example", "https:evil.example", "\r\nLocation: https://evil.example",
]
# What an unescaped reflection would look like in the page.
# (A CRLF payload is only text inside the page; headers are checked on their own.)
RAW = ["<script>alert", "<img src=x onerror", "<svg onload", "' onmouseover='"]


def assert_nothing_reflected_raw(response):
    html = response.content.decode()
    for raw in RAW:
        assert raw not in html, raw
    assert all("a=b" not in value for _name, value in response.items())
    assert "a" not in response.cookies


def assert_inline_scripts_carry_the_nonce(response):
    html = response.content.decode()
    policy = response.get("Content-Security-Policy", "")
    for tag in re.findall(r"<script\b[^>]*>", html):
        if "src=" in tag:
            assert re.search(r'src="/static/', tag), tag  # our own files only
            continue
        nonce = re.search(r'nonce="([^"]+)"', tag)
        assert nonce, f"inline script without a nonce: {tag}"
        assert f"'nonce-{nonce.group(1)}'" in policy


def assert_stays_on_site(response):
    """A relative Location (percent-encoded junk just gives a 404 here), never another site or scheme."""
    location = response.get("Location", "")
    assert "\r" not in location and "\n" not in location
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc and not location.lstrip().startswith(("//", "\\", "/\\")), location


@pytest.fixture
def federated(organisation):
    organisation.auth_policy = "federated"
    organisation.save()
    return reverse("enrollment:signin", kwargs={"key": organisation.enrollment_key})


# --- the federated sign-in page (appru, login_hint) ------------------------------------------------

@pytest.mark.parametrize("payload", PAYLOADS)
def test_sign_in_page_never_reflects_appru_or_login_hint_raw(client, federated, alice, payload):
    for appru in (payload, APPRU):
        response = client.get(federated, {"appru": appru, "login_hint": payload}, secure=True)
        assert response.status_code in (200, 400)
        assert_nothing_reflected_raw(response)
        assert_inline_scripts_carry_the_nonce(response)
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        if not appru.startswith("ms-app://"):
            assert response.status_code == 400  # only the broker's own scheme is a return address


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.startswith("ms-app://")] + PAYLOADS[:3])
def test_the_token_is_posted_only_to_an_escaped_ms_app_address(client, federated, alice, payload):
    response = client.post(federated, {"username": alice.email, "password": PASSWORD, "appru": payload}, secure=True)
    assert_nothing_reflected_raw(response)
    assert_inline_scripts_carry_the_nonce(response)
    html = response.content.decode()
    if "wresult" in html:
        action = re.search(r'<form id="wresult-form" method="post" action="([^"]*)"', html).group(1)
        assert action.startswith("ms-app://") and "<" not in action and '"' not in action
        assert "form-action 'self' ms-app:" in response["Content-Security-Policy"]
    else:
        assert response.status_code == 400


# --- /go, /login and their `next` ---------------------------------------------------------------------

@pytest.mark.parametrize("payload", PAYLOADS)
def test_login_next_is_escaped_on_the_page_and_never_followed_off_site(client, organisation, alice, payload):
    page = client.get(reverse("invitations:login"), {"next": payload})
    assert page.status_code == 200
    assert_nothing_reflected_raw(page)
    assert_inline_scripts_carry_the_nonce(page)
    response = client.post(f"{reverse('invitations:login')}?next={payload}",
                           {"identity": alice.email, "password": PASSWORD, "next": payload})
    assert response.status_code == 302
    assert_stays_on_site(response)
    client.logout()


@pytest.mark.parametrize("payload", PAYLOADS[:8])
def test_go_sends_to_the_enrollment_page_whatever_the_query(client, organisation, alice, payload):
    response = client.get(reverse("invitations:go"), {"next": payload, "redirect_uri": payload})
    assert response.status_code == 302 and response["Location"] == "/login?next=/enroll"
    client.force_login(alice)
    response = client.get(reverse("invitations:go"), {"next": payload, "redirect_uri": payload})
    assert response["Location"] == reverse("invitations:enroll")


# --- /invite/<token> ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ['"><script>alert(1)</script>', "%0d%0aSet-Cookie:%20a=b", "x" * 5000, "..%2f..%2f"])
def test_invitation_link_with_a_forged_token_is_a_plain_404(client, organisation, token):
    response = client.get(f"/invite/{token}")
    assert response.status_code == 404
    assert_nothing_reflected_raw(response)


@pytest.fixture
def hostile():
    """Values an administrator or a CSV import could have stored, shown back on the portal's pages."""
    organisation = Organisation.get()
    organisation.name = '<script>alert(1)</script> Contoso'
    organisation.save()
    user = UserFactory(email="mallory@example.com", display_name="'><img src=x onerror=alert(1)>",
                       mdm_username='CORP\\"><svg onload=alert(1)>', no_password=True)
    raw = secrets.token_urlsafe(32)
    InvitationEmailFactory(invitation=InvitationFactory(user=user), token_hash=hash_token(raw), status="sent")
    return user, reverse("invitations:accept", args=[raw])


def test_stored_names_are_escaped_on_the_invitation_and_enrollment_pages(client, hostile):
    user, link = hostile
    page = client.get(link)
    assert page.status_code == 200
    assert_nothing_reflected_raw(page)
    response = client.post(link, {"new_password1": "Lantern-Orchard-1987", "new_password2": "Lantern-Orchard-1987"})
    assert response.status_code == 302 and response["Location"] == reverse("invitations:enroll")
    enroll = client.get(reverse("invitations:enroll"))
    assert enroll.status_code == 200
    assert_nothing_reflected_raw(enroll)
    assert_inline_scripts_carry_the_nonce(enroll)
    link = re.search(r'href="(ms-device-enrollment:[^"]*)"', enroll.content.decode()).group(1)
    assert "<" not in link and '"' not in link and " " not in link


# --- CSRF ---------------------------------------------------------------------------------------------

def test_every_form_refuses_a_post_without_a_csrf_token(organisation, alice, federated, hostile):
    _user, link = hostile
    browser = Client(enforce_csrf_checks=True)
    posts = {
        reverse("invitations:login"): {"identity": alice.email, "password": PASSWORD},
        link: {"new_password1": "Lantern-Orchard-1987", "new_password2": "Lantern-Orchard-1987"},
        federated: {"username": alice.email, "password": PASSWORD, "appru": APPRU},
        reverse("admin:login"): {"username": alice.email, "password": PASSWORD},
    }
    for url, data in posts.items():
        assert browser.post(url, data, secure=True).status_code == 403, url
    browser.force_login(alice)
    for url in (reverse("invitations:request_pin"), reverse("invitations:logout")):
        assert browser.post(url, secure=True).status_code == 403, url
    assert browser.get(reverse("invitations:enroll")).wsgi_request.user == alice  # still signed in


def test_a_token_from_another_session_is_refused(organisation, alice):
    attacker, victim = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    page = attacker.get(reverse("invitations:login"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = victim.post(reverse("invitations:login"),
                           {"identity": alice.email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 403


# --- generated form input ---------------------------------------------------------------------------

FORM_TEXT = st.one_of(st.sampled_from(PAYLOADS + [APPRU, "alice@example.com", PASSWORD, "", "\x00", "ms-app://"]),
                      st.text(max_size=80), st.text(min_size=2000, max_size=2100))


@pytest.mark.fuzz
def test_sign_in_pages_answer_any_form_input_without_a_server_error(organisation, alice, federated):
    login = reverse("invitations:login")

    @given(FORM_TEXT, FORM_TEXT, FORM_TEXT, st.booleans())
    def probe(identity, secret, extra, as_post):
        client = Client(raise_request_exception=True)
        if as_post:
            pages = [client.post(federated, {"username": identity, "password": secret, "pin": secret, "appru": extra},
                                 secure=True),
                     client.post(f"{login}?next={quote(extra)}", {"identity": identity, "password": secret, "next": extra})]
        else:
            pages = [client.get(federated, {"appru": extra, "login_hint": identity}, secure=True),
                     client.get(login, {"next": extra})]
        for page in pages:
            assert page.status_code in (200, 302, 400, 429), page.status_code
            assert_nothing_reflected_raw(page)
            if page.status_code == 302:
                assert_stays_on_site(page)

    probe()


def test_a_nul_in_the_login_hint_or_user_name_is_an_unknown_account_not_a_server_error(client, federated, alice):
    """Found by the generated input above on PostgreSQL, which refuses NUL in a query. In the query
    string a NUL is refused up front (a 400 that says so, mdmportal/nul_characters.py); in the form it
    is an unknown account."""
    page = Client(raise_request_exception=True).get(federated, {"appru": APPRU, "login_hint": "alice\x00"},
                                                    secure=True)
    assert page.status_code == 400 and b"NUL character" in page.content
    posted = Client(raise_request_exception=True).post(
        federated, {"username": "alice@example.com\x00", "password": PASSWORD, "appru": APPRU}, secure=True)
    assert posted.status_code == 200 and "wresult" not in posted.content.decode()
