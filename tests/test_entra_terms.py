"""The Entra terms-of-use page (Microsoft's "Terms of Use protocol semantics")."""
import logging
import re
import urllib.parse
from html import unescape
from unittest import mock

import pytest

from accounts.models import AuditEvent
from enrollment import entra
from enrollment.models import EntraKeyAlert
from tests import entra_tokens as tokens
from tests.factories import UserFactory
from tests.factories_enrollment import TEST_TENANT, EntraIdentityFactory, EntraSettingsFactory, JwksSetFactory

pytestmark = pytest.mark.django_db

URL = "/EnrollmentServer/TermsOfUse"
BROKER = "ms-appx-web://Microsoft.AAD.BrokerPlugin"
REQUEST_ID = "34be581c-6ebd-49d6-a4e1-150eff4b7213"


@pytest.fixture(autouse=True)
def entra_on(organisation):
    EntraSettingsFactory(terms_text="Devices must stay encrypted.")
    JwksSetFactory()


def open_terms(client, token=None, *, redirect_uri=BROKER, api_version="1.0", mode=None, host="MOSET", language="en",
               request_id=REQUEST_ID):
    query = {"redirect_uri": redirect_uri, "client-request-id": request_id}
    if api_version is not None:
        query["api-version"] = api_version
    if mode:
        query["mode"] = mode
    headers = {"HTTP_CXH_HOST": host, "HTTP_ACCEPT_LANGUAGE": language}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(URL, query, secure=True, **headers)


def answer_of(response, redirect_uri=BROKER):
    """The parameters of the 302 back to Windows."""
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(redirect_uri + ("&" if "?" in redirect_uri else "?")), location
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)), location


def state_of(response):
    match = re.search(r'name="state" value="([^"]+)"', response.content.decode())
    assert match, response.content.decode()[:800]
    return unescape(match.group(1))


def decide(client, page, decision):
    return client.post(URL, {"state": state_of(page), "decision": decision}, secure=True)


# The trio: no token, a token we do not trust, the user's own token.

def test_terms_without_a_token_send_windows_back_with_unauthorized_client(client):
    answer, location = answer_of(open_terms(client))
    assert answer == {"error": "unauthorized_client", "error_description": "An access token is required.",
                      "client-request-id": REQUEST_ID}
    assert "error_description=An%20access%20token%20is%20required." in location
    assert AuditEvent.objects.get(action="entra.terms_refused").detail["reason"] == "no bearer token"


def test_terms_with_a_forged_token_send_windows_back_with_unauthorized_client(client):
    forged = tokens.make_token(key_index=tokens.OTHER_KEY)
    answer, _location = answer_of(open_terms(client, forged))
    assert answer["error"] == "unauthorized_client"
    event = AuditEvent.objects.get(action="entra.terms_refused")
    assert "signature" in event.detail["reason"] and forged not in str(event.detail)


def test_terms_with_the_users_token_show_accept_and_decline_in_light_mode(client):
    response = open_terms(client, tokens.make_token())
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="light"' in html and tokens.UPN in html and "Devices must stay encrypted." in html
    assert 'value="accept"' in html and 'value="decline"' in html
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "ms-appx-web:" in response["Content-Security-Policy"]


# Appearance: OOBE (FRX) dark, no Decline during a join; French.

def test_oobe_shows_the_dark_page_without_decline(client):
    html = open_terms(client, tokens.make_token(), host="FRX", mode="azureadjoin").content.decode()
    assert 'class="dark"' in html
    assert 'value="accept"' in html and 'value="decline"' not in html


def test_entra_join_from_settings_offers_no_decline(client):
    html = open_terms(client, tokens.make_token(), mode="azureadjoin").content.decode()
    assert 'class="light"' in html and 'value="decline"' not in html


def test_terms_are_in_french_for_a_french_windows(client):
    html = open_terms(client, tokens.make_token(), language="fr-FR,fr;q=0.9").content.decode()
    assert '<html lang="fr">' in html
    assert "Accepter" in html and "Refuser" in html and "conditions d’utilisation" in html


# Answers.

def test_accepting_returns_a_signed_blob_naming_the_user(client):
    page = open_terms(client, tokens.make_token())
    answer, _location = answer_of(decide(client, page, "accept"))
    assert answer["IsAccepted"] == "true" and answer["client-request-id"] == REQUEST_ID
    user = entra.EntraClaims(tenant_id=TEST_TENANT, object_id=tokens.USER_OID, upn="", name="", device_id="")
    assert entra.terms_blob_problem(answer["OpaqueBlob"], user) == ""
    stranger = entra.EntraClaims(tenant_id=TEST_TENANT, object_id="bbbbbbbb-0000-4000-8000-000000000000", upn="",
                                 name="", device_id="")
    assert entra.terms_blob_problem(answer["OpaqueBlob"], stranger) == "accepted by another Entra user"
    assert AuditEvent.objects.get(action="entra.terms_accepted").detail["client_request_id"] == REQUEST_ID


def test_declining_a_work_account_returns_is_accepted_false(client):
    page = open_terms(client, tokens.make_token())
    answer, _location = answer_of(decide(client, page, "decline"))
    assert answer == {"IsAccepted": "false", "client-request-id": REQUEST_ID}
    assert AuditEvent.objects.filter(action="entra.terms_declined").exists()


def test_declining_during_an_entra_join_is_an_error(client):
    page = open_terms(client, tokens.make_token(), mode="azureadjoin")
    answer, _location = answer_of(decide(client, page, "decline"))
    assert answer["error"] == "invalid_request" and "IsAccepted" not in answer


def test_answer_with_a_tampered_state_is_a_page_not_a_redirect(client):
    page = open_terms(client, tokens.make_token())
    response = client.post(URL, {"state": state_of(page)[:-4] + "AAAA", "decision": "accept"}, secure=True)
    assert response.status_code == 400 and "Location" not in response


def test_unsupported_api_version_is_an_invalid_request(client):
    answer, location = answer_of(open_terms(client, tokens.make_token(), api_version="2.0"))
    assert answer["error"] == "invalid_request" and answer["error_description"] == "unsupported version"
    assert "unsupported%20version" in location


def test_missing_api_version_is_an_invalid_request(client):
    answer, _location = answer_of(open_terms(client, tokens.make_token(), api_version=None))
    assert answer["error"] == "invalid_request"


def test_disabled_user_is_an_unauthorized_client(client):
    EntraIdentityFactory(user=UserFactory(email=tokens.UPN, is_active=False), object_id=tokens.USER_OID)
    answer, _location = answer_of(open_terms(client, tokens.make_token()))
    assert answer["error"] == "unauthorized_client" and answer["error_description"] == "unauthorized user or tenant"


def test_our_own_failure_is_a_server_error(client):
    with mock.patch("enrollment.terms.entra.known_user", autospec=True, side_effect=RuntimeError("database down")):
        answer, _location = answer_of(open_terms(client, tokens.make_token()))
    assert answer["error"] == "server_error" and answer["error_description"] == "internal service error"


def test_unknown_kid_on_the_terms_page_alerts_too(client):
    answer, _location = answer_of(open_terms(client, tokens.make_token(kid="rotated-by-microsoft")))
    assert answer["error"] == "unauthorized_client"
    assert EntraKeyAlert.objects.open().filter(kid="rotated-by-microsoft").exists()


# redirect_uri: only where Windows waits.

@pytest.mark.parametrize("redirect_uri", [
    BROKER,
    "ms-appx-web://microsoft.aad.brokerplugin/S-1-15-2-1910091885-1573563583",
    "ms-aadj-redir://auth/mdm",
    "ms-aadj-redir://auth/mdm?state=1",
])
def test_allowed_redirect_uri_gets_the_answer(client, redirect_uri):
    page = open_terms(client, tokens.make_token(), redirect_uri=redirect_uri)
    assert page.status_code == 200
    answer, _location = answer_of(decide(client, page, "accept"), redirect_uri)
    assert answer["IsAccepted"] == "true"


@pytest.mark.parametrize("redirect_uri", [
    "javascript:alert(document.cookie)",
    "JavaScript://%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://enterpriseenrollment.contoso.com/",
    "https://enterpriseenrollment.contoso.com/tou-done?state=1",
    "https://login.microsoftonline.com/WebApp/CloudDomainJoin/8",
    "https://evil.example/phish",
    "ms-appx-web://ContosoMdm/ToUResponse",
    "ms-aadj-redir://auth/elsewhere",
    "ms-aadj-redir://evil/mdm",
    "ms-app://windows.immersivecontrolpanel",
    "https://attacker@evil.example.com/",
    "https:///no-host",
    "https://evil.example.com/#fragment",
    " https://evil.example.com/",
    "https://evil.example.com/\\path",
    "",
])
def test_other_redirect_uri_gets_a_page_never_a_redirect(client, redirect_uri):
    for token in (None, tokens.make_token()):
        response = open_terms(client, token, redirect_uri=redirect_uri)
        assert response.status_code == 400 and "Location" not in response
        assert "invalid return address" in response.content.decode()


def test_an_https_redirect_uri_is_never_redirected_to(client):
    """An open redirect with our host name on it: Windows only ever waits on ms-appx-web:// (the Entra
    broker) or ms-aadj-redir://, so any web address is refused with the page, token or not."""
    for token in (None, tokens.make_token()):
        response = open_terms(client, token, redirect_uri="https://evil.example/phish")
        assert response.status_code == 400 and "Location" not in response
        assert "invalid return address" in response.content.decode()


def test_a_nul_in_the_request_id_is_still_audited_on_postgresql(postgres, client, caplog):
    """PostgreSQL refuses NUL in text and JSON (SQLite does not): a client-request-id carrying one must
    not make the refusal's audit row fail, with a traceback and no audit."""
    redirect_uri = "ms-aadj-redir://auth/mdm"
    answer, _location = answer_of(open_terms(client, redirect_uri=redirect_uri, request_id="\x00" + REQUEST_ID),
                                  redirect_uri)

    assert answer["error"] == "unauthorized_client"
    event = AuditEvent.objects.get(action="entra.terms_refused")
    assert event.detail == {"reason": "no bearer token", "client_request_id": REQUEST_ID}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
