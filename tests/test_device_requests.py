"""Device requests (the OMA-DM endpoint, the keyless discovery probe) skip the middleware that only
people's pages use (mdmportal/device_requests.py); pages keep all of it."""
import pytest
from django.utils import translation

from tests import omadm_messages as sml

pytestmark = pytest.mark.django_db


def test_discovery_probe_gets_no_session_language_or_user_work(client, organisation):
    response = client.get("/EnrollmentServer/Discovery.svc", HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200 and response.content == b""
    assert "Content-Language" not in response and "Accept-Language" not in response.get("Vary", "")
    request = response.wsgi_request
    assert not hasattr(request, "session") and not hasattr(request, "user") and not hasattr(request, "_messages")
    # The security headers every response gets are still there.
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"


def test_management_endpoint_runs_in_the_default_language_whatever_the_worker_served_before(client, organisation):
    translation.activate("fr")  # a French page served just before, in this worker
    response = client.post("/MANAGEMENTSERVER/mdm.svc", sml.package1("1E08C6E95D8BB843B1278FF45BC60CC6"),
                           content_type=sml.CONTENT_TYPE, HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 403  # no certificate and no such device
    assert not hasattr(response.wsgi_request, "session")
    assert translation.get_language() == "en"


def test_pages_keep_session_language_and_user(client, organisation):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="fr")

    assert response["Content-Language"] == "fr"
    request = response.wsgi_request
    assert hasattr(request, "session") and hasattr(request, "user")
