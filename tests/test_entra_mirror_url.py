"""The JWKS mirror URL decides which keys sign acceptable Entra ID tokens, so its answer must come
over https (RFC 8725 §3.10 / OpenID Connect Discovery: key sets are fetched over TLS): plain http lets
anyone on the path hand us their own signing key. Plain http is accepted only on the loopback, and only
with ENTRA_ALLOW_LOOPBACK_HTTP (test doubles). Checked when the URL is saved and again at fetch time,
where a redirect must lead to an address that passes the same rule."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command

from enrollment.models import EntraSettings, JwksSet
from tests.console_fixtures import messages_of
from tests.factories_enrollment import TEST_APP_ID_URI, TEST_TENANT, EntraSettingsFactory, public_jwk, rsa_key

pytestmark = pytest.mark.django_db

SETTINGS = "/admin/enrollment/entrasettings/1/change/"
FETCH = "/admin/enrollment/entrasettings/keys/fetch/"
JWKS = {"keys": [public_jwk(rsa_key(42), "new-key-1")]}


@pytest.fixture
def entra(organisation):
    return EntraSettingsFactory()


@pytest.fixture
def admin_client(client, full_admin):
    client.force_login(full_admin)
    return client


def settings_form(**fields):
    return {"enabled": "on", "tenant_ids_text": TEST_TENANT, "audiences_text": TEST_APP_ID_URI,
            "jwks_mirror_url": "", "terms_text": "", "_save": "Save", **fields}


@pytest.fixture
def mirror():
    """A JWKS mirror on 127.0.0.1 counting its requests; `answer["redirect"]` makes it answer 302."""
    answer = {"redirect": None, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            answer["requests"] += 1
            if answer["redirect"] and self.path != "/moved":
                self.send_response(302)
                self.send_header("Location", answer["redirect"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(JWKS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer["url"] = f"http://127.0.0.1:{server.server_address[1]}/common/discovery/v2.0/keys"
        yield answer
    finally:
        server.shutdown()
        server.server_close()


# --- saving the URL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://keys.example.com/keys.json", "http://10.0.0.5/keys", "ftp://keys.example.com/k"])
def test_a_plain_http_mirror_url_is_a_form_error(admin_client, entra, url):
    response = admin_client.post(SETTINGS, settings_form(jwks_mirror_url=url))

    assert response.status_code == 200
    assert "https://" in " ".join(response.context["adminform"].form.errors.get("jwks_mirror_url", []))
    assert EntraSettings.get().jwks_mirror_url == ""


def test_loopback_http_is_refused_without_the_setting_and_saved_with_it(admin_client, entra, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = False
    response = admin_client.post(SETTINGS, settings_form(jwks_mirror_url="http://127.0.0.1:8080/keys"))
    assert "jwks_mirror_url" in response.context["adminform"].form.errors

    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    for url in ("http://127.0.0.1:8080/keys", "http://localhost:8080/keys", "http://[::1]:8080/keys"):
        assert admin_client.post(SETTINGS, settings_form(jwks_mirror_url=url)).status_code == 302
        assert EntraSettings.get().jwks_mirror_url == url
    response = admin_client.post(SETTINGS, settings_form(jwks_mirror_url="http://keys.example.com/keys"))
    assert "jwks_mirror_url" in response.context["adminform"].form.errors


def test_an_https_mirror_url_is_saved(admin_client, entra):
    assert admin_client.post(SETTINGS, settings_form(jwks_mirror_url="https://keys.contoso.internal/keys.json")).status_code == 302
    assert EntraSettings.get().jwks_mirror_url == "https://keys.contoso.internal/keys.json"


# --- fetching -------------------------------------------------------------------------------------

def test_a_plain_http_mirror_saved_earlier_is_not_fetched(admin_client, entra, mirror, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = False
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url=mirror["url"])

    response = admin_client.post(FETCH, follow=True)

    assert any("https://" in message for message in messages_of(response))
    assert mirror["requests"] == 0
    assert not JwksSet.objects.exists()


def test_the_command_refuses_a_plain_http_url(entra, mirror, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = False
    with pytest.raises(CommandError, match="https://"):
        call_command("fetch_entra_keys", "--url", mirror["url"])
    assert mirror["requests"] == 0
    assert not JwksSet.objects.exists()


def test_loopback_http_is_fetched_with_the_setting(entra, mirror, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    call_command("fetch_entra_keys", "--url", mirror["url"])
    assert JwksSet.objects.get().key_ids == ["new-key-1"]


def test_a_redirect_to_plain_http_elsewhere_is_not_followed(admin_client, entra, mirror, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    mirror["redirect"] = "http://keys.example.com/keys"
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url=mirror["url"])

    response = admin_client.post(FETCH, follow=True)

    assert any("redirect" in message and "https://" in message for message in messages_of(response))
    assert not JwksSet.objects.exists()


def test_a_redirect_that_keeps_to_the_rule_is_followed(entra, mirror, settings):
    settings.ENTRA_ALLOW_LOOPBACK_HTTP = True
    mirror["redirect"] = mirror["url"].rsplit("/common/", 1)[0] + "/moved"
    call_command("fetch_entra_keys", "--url", mirror["url"])
    assert JwksSet.objects.get().key_ids == ["new-key-1"] and mirror["requests"] == 2


def test_check_warns_about_a_plain_http_mirror_saved_earlier(entra, settings):
    from enrollment.checks import check_entra_settings

    settings.ENTRA_ALLOW_LOOPBACK_HTTP = False
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url="http://keys.contoso.internal/keys")
    assert "enrollment.W202" in [m.id for m in check_entra_settings(None)]
    EntraSettings.objects.filter(pk=1).update(jwks_mirror_url="https://keys.contoso.internal/keys")
    assert "enrollment.W202" not in [m.id for m in check_entra_settings(None)]
