"""The console's Entra ID pages: settings with the values to paste into Entra, the
signing keys (upload, paste, mirror fetch, switch off), unknown-key alerts and the dashboard banner.
Full administrators change; the other roles view."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from enrollment.checks import check_entra_settings
from enrollment.models import EntraKeyAlert, EntraSettings, JwksSet
from tests.console_fixtures import action, messages_of
from tests.factories_enrollment import (
    TEST_APP_ID_URI, TEST_TENANT, EntraKeyAlertFactory, EntraSettingsFactory, JwksSetFactory, public_jwk, rsa_key,
)

pytestmark = pytest.mark.django_db

SETTINGS = "/admin/enrollment/entrasettings/1/change/"
IMPORT = "/admin/enrollment/entrasettings/keys/import/"
FETCH = "/admin/enrollment/entrasettings/keys/fetch/"
JWKS = {"keys": [public_jwk(rsa_key(42), "new-key-1"), public_jwk(rsa_key(43), "new-key-2")]}


@pytest.fixture
def entra(organisation):
    return EntraSettingsFactory()


def settings_form(**fields):
    return {"enabled": "on", "tenant_ids_text": TEST_TENANT, "audiences_text": TEST_APP_ID_URI,
            "jwks_mirror_url": "", "terms_text": "", "_save": "Save", **fields}


def signed_in(client, user):
    client.force_login(user)
    return client


# The settings page: anonymous, a role that only views, a full administrator.

def test_entra_settings_page_redirects_anonymous(client, entra):
    assert client.get(SETTINGS)["Location"].startswith("/admin/login/")


def test_entra_settings_list_leads_to_the_one_settings_page(client, full_admin, entra):
    assert signed_in(client, full_admin).get("/admin/enrollment/entrasettings/")["Location"] == SETTINGS


@pytest.mark.parametrize("role", ["helpdesk", "enrollment_admin"])
def test_entra_settings_page_is_read_only_below_full_administrator(client, request, entra, role):
    client = signed_in(client, request.getfixturevalue(role))
    response = client.get(SETTINGS)
    assert response.status_code == 200
    html = response.content.decode()
    assert TEST_TENANT in html and 'name="tenant_ids_text"' not in html
    assert IMPORT not in html and FETCH not in html
    assert client.post(SETTINGS, settings_form(tenant_ids_text="")).status_code == 403
    assert client.get(IMPORT).status_code == 403
    assert client.post(FETCH).status_code == 403
    assert EntraSettings.get().tenant_ids == [TEST_TENANT]


def test_entra_settings_page_shows_the_values_to_paste_with_copy_buttons(client, full_admin, entra):
    html = signed_in(client, full_admin).get(SETTINGS).content.decode()
    for element_id, value in (("entra-discovery-url", "https://enterpriseenrollment.contoso.com/EnrollmentServer/Discovery.svc"),
                              ("entra-terms-url", "https://enterpriseenrollment.contoso.com/EnrollmentServer/TermsOfUse")):
        # Selectable without JavaScript (a read-only field); the button appears with it.
        assert f'readonly class="copy-value" id="{element_id}" value="{value}"' in html
        assert f'data-copy-target="{element_id}"' in html
    assert "js/copy.js" in html


def test_full_administrator_saves_tenants_and_audiences(client, full_admin, entra):
    client = signed_in(client, full_admin)
    client_id = "0A1B2C3D-0000-4000-8000-00000000000A"
    response = client.post(SETTINGS, settings_form(
        tenant_ids_text=f"{TEST_TENANT.upper()}\n\n{TEST_TENANT}\n", audiences_text=f"api://mdm-contoso\n{client_id}",
        jwks_mirror_url="https://keys.contoso.internal/keys.json"))
    assert response.status_code == 302
    saved = EntraSettings.get()
    assert saved.tenant_ids == [TEST_TENANT]
    assert saved.audiences == ["api://mdm-contoso", client_id.lower()]
    assert saved.jwks_mirror_url == "https://keys.contoso.internal/keys.json"
    assert AuditEvent.objects.filter(action="entrasettings.changed", actor=full_admin).exists()
    assert "The Entra ID settings were saved." in client.get(response["Location"]).content.decode()


def test_full_administrator_lists_the_verified_domains(client, full_admin, entra):
    client = signed_in(client, full_admin)
    response = client.post(SETTINGS, settings_form(domains_text="Contoso.com\n@fabrikam.com.\n\ncontoso.com"))
    assert response.status_code == 302
    assert EntraSettings.get().domains == ["contoso.com", "fabrikam.com"]
    assert 'name="domains_text"' in client.get(SETTINGS).content.decode()
    JwksSetFactory()  # ready: the page says what discovery does
    assert "Discovery answers Federated to addresses of the verified domains" in client.get(SETTINGS).content.decode()


def test_verified_domains_are_shown_to_roles_that_only_view(client, helpdesk, entra):
    EntraSettings.objects.filter(pk=1).update(domains=["contoso.com"])
    html = signed_in(client, helpdesk).get(SETTINGS).content.decode()
    assert "contoso.com" in html and 'name="domains_text"' not in html


@pytest.mark.parametrize("fields, error_field", [
    ({"domains_text": "contoso com"}, "domains_text"),
    ({"domains_text": "https://contoso.com/"}, "domains_text"),
    ({"tenant_ids_text": "contoso.onmicrosoft.com"}, "tenant_ids_text"),
    ({"tenant_domain": "contoso onmicrosoft"}, "tenant_domain"),
    ({"audiences_text": "mdm.contoso.com"}, "audiences_text"),
    ({"tenant_ids_text": ""}, "__all__"),
])
def test_bad_entra_settings_are_explained_and_not_saved(client, full_admin, entra, fields, error_field):
    response = signed_in(client, full_admin).post(SETTINGS, settings_form(**fields))
    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    assert EntraSettings.get().audiences == EntraSettingsFactory().audiences


def test_page_says_what_entra_enrollment_still_needs(client, full_admin, entra):
    client = signed_in(client, full_admin)
    assert "Entra ID enrollment is off." in client.get(SETTINGS).content.decode()
    JwksSetFactory()
    assert "Entra ID enrollment is on." in client.get(SETTINGS).content.decode()


# Signing keys: upload, paste, mirror.

def upload(client, data, name="keys.json"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(IMPORT, {"file": SimpleUploadedFile(name, data, "application/json"), "document": ""})


def test_full_administrator_uploads_a_key_set(client, full_admin, entra):
    client = signed_in(client, full_admin)
    response = upload(client, json.dumps(JWKS).encode())
    assert response.status_code == 302
    imported = JwksSet.objects.get()
    assert imported.key_ids == ["new-key-1", "new-key-2"] and imported.source == "upload"
    assert imported.active and imported.imported_by == full_admin
    assert AuditEvent.objects.filter(action="entra.jwks_imported").exists()
    html = client.get(SETTINGS).content.decode()
    assert "new-key-1" in html and "Imported 2 signing keys" in html


def test_pasted_key_set_is_imported_once(client, full_admin, entra):
    client = signed_in(client, full_admin)
    client.post(IMPORT, {"document": json.dumps(JWKS)})
    response = client.post(IMPORT, {"document": json.dumps(JWKS)}, follow=True)
    assert JwksSet.objects.count() == 1
    assert any("already imported" in message for message in messages_of(response))


@pytest.mark.parametrize("document, error", [
    (b"{not json", "not valid JSON"),
    (b'{"kty": "RSA"}', 'needs a "keys" list'),
    (b'{"keys": []}', "empty"),
    (json.dumps({"keys": [{**JWKS["keys"][0], "d": "AQAB"}]}).encode(), "contains a private key"),
    (json.dumps({"keys": [{**JWKS["keys"][0], "kty": "EC"}]}).encode(), "kty RSA"),
    (json.dumps({"keys": [public_jwk(rsa_key(44, bits=1024), "short")]}).encode(), "at least 2048"),
    (json.dumps({"keys": [{**JWKS["keys"][0], "n": "%%%"}]}).encode(), "not a valid RSA public key"),
    (json.dumps({"keys": [{**JWKS["keys"][0], "alg": "HS256"}]}).encode(), "only RS256"),
    (json.dumps({"keys": [JWKS["keys"][0], JWKS["keys"][0]]}).encode(), "appears twice"),
    (json.dumps({"keys": [{k: v for k, v in JWKS["keys"][0].items() if k != "kid"}]}).encode(), "no usable key id"),
    (b"\xff\xfe garbage", "not UTF-8"),
])
def test_bad_key_set_is_explained_and_nothing_is_stored(client, full_admin, entra, document, error):
    response = upload(signed_in(client, full_admin), document)
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].non_field_errors())
    assert not JwksSet.objects.exists()


def test_import_needs_a_file_or_pasted_json(client, full_admin, entra):
    response = signed_in(client, full_admin).post(IMPORT, {"document": ""})
    assert "Choose a file or paste the JSON" in " ".join(response.context["form"].non_field_errors())


def test_settings_page_gives_the_keys_address_of_the_tenant(client, full_admin, entra):
    """The admin renders help texts as HTML: a "<tenant>" in one vanished as a tag."""
    html = signed_in(client, full_admin).get(SETTINGS).content.decode()
    assert f"https://login.microsoftonline.com/{TEST_TENANT}/discovery/v2.0/keys" in html
    EntraSettings.objects.filter(pk=1).update(tenant_ids=[])
    html = client.get(SETTINGS).content.decode()
    assert "microsoftonline.com//" not in html
    assert "https://login.microsoftonline.com/&lt;tenant id&gt;/discovery/v2.0/keys" in html


def test_import_page_gives_the_keys_address_of_the_tenant(client, full_admin, entra):
    html = signed_in(client, full_admin).get(IMPORT).content.decode()
    assert f'<code id="keys-url">https://login.microsoftonline.com/{TEST_TENANT}/discovery/v2.0/keys</code>' in html
    EntraSettings.objects.filter(pk=1).update(tenant_ids=[])
    html = client.get(IMPORT).content.decode()
    assert "microsoftonline.com//" not in html
    assert "https://login.microsoftonline.com/&lt;tenant id&gt;/discovery/v2.0/keys" in html


def test_importing_the_missing_key_resolves_its_alert(client, full_admin, entra):
    alert = EntraKeyAlertFactory(kid="new-key-2")
    other = EntraKeyAlertFactory(kid="still-unknown")
    upload(signed_in(client, full_admin), json.dumps(JWKS).encode())
    alert.refresh_from_db()
    other.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_by == full_admin
    assert other.resolved_at is None


@pytest.fixture
def mirror(settings):
    """A JWKS mirror on the local network: a real HTTP server whose answer the test sets. Plain http
    on the loopback is accepted only with ENTRA_ALLOW_LOOPBACK_HTTP (tests/test_entra_mirror_url.py)."""
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    answer = {"status": 200, "body": json.dumps(JWKS).encode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/common/discovery/v2.0/keys", answer
    finally:
        server.shutdown()
        server.server_close()


def test_full_administrator_fetches_the_keys_from_the_mirror(client, full_admin, entra, mirror):
    url, _answer = mirror
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url=url)
    response = signed_in(client, full_admin).post(FETCH, follow=True)
    imported = JwksSet.objects.get()
    assert (imported.source, imported.source_url, imported.key_ids) == ("mirror", url, ["new-key-1", "new-key-2"])
    assert any("Imported 2 signing keys" in message for message in messages_of(response))


@pytest.mark.parametrize("status, body, error", [
    (404, b"not here", "HTTP 404"),
    (200, b"<html>captive portal</html>", "not valid JSON"),
])
def test_mirror_failure_is_explained_and_nothing_is_stored(client, full_admin, entra, mirror, status, body, error):
    url, answer = mirror
    answer.update(status=status, body=body)
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url=url)
    response = signed_in(client, full_admin).post(FETCH, follow=True)
    assert any(error in message for message in messages_of(response))
    assert not JwksSet.objects.exists()


def test_fetch_without_a_mirror_url_says_so(client, full_admin, entra):
    response = signed_in(client, full_admin).post(FETCH, follow=True)
    assert any("mirror URL first" in message for message in messages_of(response))


def test_unreachable_mirror_is_explained(client, full_admin, entra, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url="http://127.0.0.1:9/keys")
    response = signed_in(client, full_admin).post(FETCH, follow=True)
    assert any("Could not fetch" in message for message in messages_of(response))


def test_full_administrator_stops_trusting_a_key_set(client, full_admin, entra):
    jwks = JwksSetFactory()
    client = signed_in(client, full_admin)
    client.post(f"/admin/enrollment/entrasettings/keys/{jwks.pk}/switch/")
    jwks.refresh_from_db()
    assert not jwks.active
    assert AuditEvent.objects.filter(action="jwksset.deactivated").exists()
    client.post(f"/admin/enrollment/entrasettings/keys/{jwks.pk}/switch/")
    jwks.refresh_from_db()
    assert jwks.active


def test_helpdesk_cannot_switch_a_key_set(client, helpdesk, entra):
    jwks = JwksSetFactory()
    assert signed_in(client, helpdesk).post(f"/admin/enrollment/entrasettings/keys/{jwks.pk}/switch/").status_code == 403
    jwks.refresh_from_db()
    assert jwks.active


# Unknown-key alerts.

def test_dashboard_warns_about_unknown_keys(client, helpdesk, entra):
    client = signed_in(client, helpdesk)
    assert 'id="entra-key-alerts"' not in client.get("/admin/").content.decode()
    EntraKeyAlertFactory(kid="rotated")
    EntraKeyAlertFactory(kid="long-gone", resolved=True)
    html = client.get("/admin/").content.decode()
    assert 'id="entra-key-alerts"' in html and "1 signing key used by Entra ID is unknown here" in html
    assert "rotated" in client.get(SETTINGS).content.decode()


def test_alerts_are_listed_for_every_role_and_resolved_by_full_administrators(client, helpdesk, full_admin, entra):
    alert = EntraKeyAlertFactory(kid="rotated")
    client = signed_in(client, helpdesk)
    assert "rotated" in client.get("/admin/enrollment/entrakeyalert/").content.decode()
    client.post("/admin/enrollment/entrakeyalert/", action("resolve", alert))
    alert.refresh_from_db()
    assert alert.resolved_at is None
    client = signed_in(client, full_admin)
    client.post("/admin/enrollment/entrakeyalert/", action("resolve", alert))
    alert.refresh_from_db()
    assert alert.resolved_by == full_admin
    assert not EntraKeyAlert.objects.open().exists()


# Operators: the cron-friendly command and the system checks.

def test_fetch_command_imports_the_mirror_once(entra, mirror, capsys):
    url, _answer = mirror
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url=url)
    call_command("fetch_entra_keys")
    call_command("fetch_entra_keys")
    out = capsys.readouterr().out
    assert "Imported 2 keys: new-key-1, new-key-2" in out and "Unchanged" in out
    assert JwksSet.objects.get().source_url == url


def test_fetch_command_fails_loudly_on_a_bad_mirror(entra, mirror):
    url, answer = mirror
    answer.update(status=503, body=b"down")
    with pytest.raises(CommandError, match="HTTP 503"):
        call_command("fetch_entra_keys", "--url", url)
    assert not JwksSet.objects.exists()


def test_check_warns_when_entra_is_on_without_keys(entra):
    assert [m.id for m in check_entra_settings(None)] == ["enrollment.W201"]
    JwksSetFactory()
    assert check_entra_settings(None) == []


def test_check_refuses_a_terms_lifetime_under_a_minute(settings, db):
    settings.ENROLLMENT_ENTRA_TERMS_SECONDS = 5
    assert [m.id for m in check_entra_settings(None)] == ["enrollment.E201"]
