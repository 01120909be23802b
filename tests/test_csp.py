"""The Content-Security-Policy of every page (mdmportal/csp.py): the portal (/go, /login, /invite/…,
/enroll with and without a registration PIN), the federated sign-in and terms-of-use pages Windows shows,
the console and the 503 page. Each says: our own files only, no inline script or style without the
page's nonce, no framing, no MIME sniffing, no address leaking off the site. The templates hold no
inline style, event handler or un-nonced script for the policy to break (the browser tests check the
pages raise no violation)."""
import re
import secrets
from pathlib import Path
from unittest.mock import patch

import pytest
from django.db import OperationalError
from django.urls import reverse

from accounts.models import Organisation
from invitations.models import hash_token
from mdmportal import csp
from tests import entra_tokens as tokens
from tests.enrollment_soap import discover_body, service_url
from tests.factories import PASSWORD, InvitationEmailFactory, InvitationFactory, UserFactory
from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
APPRU = "ms-app://windows.immersivecontrolpanel"


def directives(response):
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in parsed, policy
        parsed[name] = sources
    return parsed


def assert_strict(response, *, form_action=("'self'",), referrer="same-origin"):
    policy = directives(response)
    assert policy["default-src"] == ["'none'"]
    for kind in ("script-src", "style-src"):
        assert policy[kind][0] == "'self'" and all(s.startswith("'nonce-") for s in policy[kind][1:]), policy
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == list(form_action)
    assert "unsafe" not in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == referrer
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        if "src=" not in tag:
            nonce = re.search(r'nonce="([^"]+)"', tag)
            assert nonce and f"'nonce-{nonce.group(1)}'" in policy["script-src"], tag
    assert "<style" not in html and not re.search(r"<[^>]+\sstyle=", html)


# The portal pages.

def test_login_page(client, organisation):
    response = client.get(reverse("invitations:login"))
    assert response.status_code == 200
    assert_strict(response)


def test_go_redirect(client, organisation):
    response = client.get(reverse("invitations:go"))
    assert response.status_code == 302
    assert_strict(response)


def test_invitation_page(client, organisation):
    raw = secrets.token_urlsafe(32)
    InvitationEmailFactory(invitation=InvitationFactory(user=UserFactory(no_password=True)),
                           token_hash=hash_token(raw), status="sent")
    response = client.get(reverse("invitations:accept", args=[raw]))
    assert response.status_code == 200 and b"Choose your password" in response.content
    assert_strict(response)


def test_enrollment_page(client, organisation, alice):
    client.force_login(alice)
    response = client.get(reverse("invitations:enroll"))
    assert response.status_code == 200 and b"ms-device-enrollment:" in response.content
    assert_strict(response)


def test_enrollment_page_showing_a_registration_pin(client, organisation, alice):
    organisation.registration_mode = "pin"
    organisation.save()
    client.force_login(alice)
    response = client.get(reverse("invitations:enroll"))
    assert b'id="registration-pin"' in response.content
    assert_strict(response)
    response = client.post(reverse("invitations:request_pin"), follow=True)
    assert response.status_code == 200
    assert_strict(response)


# The pages Windows shows: they post their answer to Windows, so form-action names its addresses.

def test_federated_sign_in_page_and_its_nonced_auto_submit(client, organisation, alice):
    organisation.auth_policy = "federated"
    organisation.save()
    url = service_url(organisation, "signin")
    assert_strict(client.get(url, {"appru": APPRU}, secure=True), form_action=("'self'", "ms-app:"))
    done = client.post(url, {"username": alice.email, "password": PASSWORD, "appru": APPRU}, secure=True)
    assert b"wresult" in done.content
    assert_strict(done, form_action=("'self'", "ms-app:"))
    assert len(directives(done)["script-src"]) == 2  # 'self' and this page's nonce


def test_terms_of_use_page(client, organisation):
    EntraSettingsFactory()
    JwksSetFactory()
    response = client.get("/EnrollmentServer/TermsOfUse", {
        "redirect_uri": "ms-appx-web://Microsoft.AAD.BrokerPlugin", "client-request-id": "1", "api-version": "1.0",
    }, secure=True, HTTP_AUTHORIZATION=f"Bearer {tokens.make_token()}")
    assert response.status_code == 200 and b'value="accept"' in response.content
    assert_strict(response, form_action=("'self'", "ms-appx-web:", "ms-aadj-redir:"), referrer="no-referrer")


# The console.

@pytest.mark.parametrize("url", ["/admin/", "/admin/accounts/user/", "/admin/enrollment/device/",
                                 "/admin/accounts/user/add/", "/admin/getting-started/"])
def test_console_pages(console, url):
    response = console.get(url, follow=True)
    assert response.status_code == 200
    assert_strict(response)


def test_browsable_api_pages_allow_drfs_inline_styles_but_no_inline_script(console):
    response = console.get("/api/v1/users/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    policy = directives(response)
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'"] and policy["default-src"] == ["'none'"]
    assert console.get("/api/v1/users/", HTTP_ACCEPT="application/json")["Content-Type"] == "application/json"


def test_console_sign_in_page(client, organisation):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert_strict(response)


# The 503 page, rendered while the database is down.

def test_unavailable_page(client):
    with patch.object(Organisation, "get", autospec=True, side_effect=OperationalError("down")):
        response = client.get(reverse("invitations:login"))
    assert response.status_code == 503
    assert_strict(response)


# What the policy leaves alone, and what it is made of.

def test_device_answers_carry_no_policy(client, organisation):
    response = client.post("/EnrollmentServer/Discovery.svc", discover_body(), content_type="application/soap+xml")
    assert response.status_code == 200 and "Content-Security-Policy" not in response


def test_nonce_is_named_only_when_the_page_used_it_and_differs_per_response():
    used, unused = csp.LazyNonce(), csp.LazyNonce()
    first, second = str(used), str(csp.LazyNonce())
    config = {"script-src": [csp.CSP.SELF, csp.CSP.NONCE]}
    assert csp.build_policy(config, used) == f"script-src 'self' 'nonce-{first}'"
    assert csp.build_policy(config, unused) == "script-src 'self'"
    assert first != second and len(first) >= 20


@pytest.mark.parametrize("template", sorted(p for p in TEMPLATES.rglob("*.html") if "emails" not in p.parts),
                         ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_hold_no_inline_style_handler_or_unnonced_script(template):
    """Email templates are not pages (mail clients need inline styles)."""
    html = template.read_text()
    assert not re.search(r"<style\b(?![^>]*nonce=)", html), "inline <style>: move it to static/css/"
    assert not re.search(r"""<[a-zA-Z][^>]*\sstyle\s*=""", html), "style attribute: use a class"
    assert not re.search(r"""<[a-zA-Z][^>]*\son[a-z]+\s*=""", html), "event handler attribute: use a static script"
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'nonce="{{ csp_nonce }}"' in tag, tag
