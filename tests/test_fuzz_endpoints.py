"""Generated bodies against the live device endpoints through the Django test client (for
hardening): Discovery, Policy, Enrollment and the OMA-DM endpoint with and without a client
certificate. Never a 500, never an exception escaping, every reply well-formed.

`HYPOTHESIS_PROFILE=fuzz ./test -m fuzz` runs FUZZ_EXAMPLES bodies per endpoint (tests/fuzzing.py).
CI runs them on PostgreSQL (.ci/run sets DATABASE_URL), which enforces column lengths where SQLite
does not: a value too long for its column is a DataError there, so these are the runs that count."""
import time
from collections import Counter

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import given

from enrollment import auth, soap
from tests import fuzzing
from tests import omadm_messages as sml
from tests.enrollment_soap import (
    CONTENT_TYPE, DEVICE_ID, discover_body, get_policies_body, get_policies_token_body, password_security, rst_body,
    service_url, token_security, windows_csr,
)
from tests.factories import PASSWORD
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain, rsa_key

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]


@pytest.fixture
def server(organisation, alice, settings):
    """An organisation with its CA and an enrolled PC. Lockouts are out of the way so that every example
    can reach the code behind the password check (the rate-limit tests cover them)."""
    settings.AXES_FAILURE_LIMIT = 10**9
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    return organisation, alice, device, cert


def _post(url, body, **extra):
    # A new client per body: the test client re-raises a view's exception, which is what we look for.
    return Client(raise_request_exception=True).post(url, body, content_type=CONTENT_TYPE, secure=True, **extra)


def run(name, seeds, check):
    answers = Counter()

    @given(fuzzing.bodies(seeds))
    def fuzz(body):
        fuzzing.POSTED[name] += 1
        answers[check(body)] += 1

    started = time.monotonic()
    fuzz()
    # The spread of answers shows how deep the bodies reach (None = a successful answer).
    print(f"\n{name}: {fuzzing.POSTED[name]} bodies in {time.monotonic() - started:.0f} s, answers {dict(answers)}")


def test_discovery_answers_every_body_with_a_soap_reply(server):
    organisation, *_ = server
    url = service_url(organisation, "discovery")
    seeds = [discover_body(), discover_body(policies=("Federated",)), discover_body(version="99"),
             discover_body(namespace=soap.DISCOVERY_NS + "/", policies=("OnPremise", "Federated", "Certificate"))]
    run("discovery", seeds, lambda body: fuzzing.check_soap_reply(_post(url, body), soap.DISCOVER_RESPONSE))


def test_policy_answers_every_body_with_a_soap_reply(server):
    organisation, alice, *_ = server
    url = service_url(organisation, "policy")
    seeds = [get_policies_body(alice.email, PASSWORD), get_policies_body(alice.email, "wrong"),
             get_policies_token_body(auth.issue_token(alice)), get_policies_body("u" * 300 + "@example.com", "wrong")]
    run("policy", seeds, lambda body: fuzzing.check_soap_reply(_post(url, body), soap.GET_POLICIES_RESPONSE))


def test_enrollment_answers_every_body_with_a_soap_reply(server):
    organisation, alice, *_ = server
    url = service_url(organisation, "enrollment")
    seeds = [rst_body(password_security(alice.email, PASSWORD), windows_csr(rsa_key(1)), device_id=f"FUZZ{i}")
             for i in range(2)]
    seeds.append(rst_body(token_security(auth.issue_token(alice)), windows_csr(rsa_key(2)), enrollment_type="Device"))
    run("enrollment", seeds, lambda body: fuzzing.check_soap_reply(_post(url, body), soap.REQUEST_TOKEN_RESPONSE))


def _management_seeds(device_id):
    return [
        sml.package1(device_id),
        sml.package1(device_id, cred=("syncml:auth-md5", "bm90IGEgcmVhbCBkaWdlc3Q="), session="2"),
        sml.message(device_id, [sml.status(1, 1, 0, "SyncHdr", 200), sml.status(2, 1, 3, "Get", 200),
                                sml.results(3, 1, 3, "./DevDetail/SwV", "10.0"),
                                sml.alert(4, 1226, sml.typed_item("com.microsoft/MDM/AsyncResult", "200"))],
                    msg="2"),
    ]


def test_management_with_a_client_certificate_answers_every_body(server):
    *_, device, cert = server
    header = certificate_header(cert)

    def check(body):
        response = Client(raise_request_exception=True).post(sml.URL, body, content_type=sml.CONTENT_TYPE,
                                                             HTTP_X_SSL_CLIENT_CERT=header)
        return fuzzing.check_syncml_reply(response)

    run("management+certificate", _management_seeds(device.device_id), check)


def test_management_without_a_certificate_answers_every_body(server):
    *_, device, _cert = server

    def check(body):
        response = Client(raise_request_exception=True).post(sml.URL, body, content_type=sml.CONTENT_TYPE)
        return fuzzing.check_syncml_reply(response)

    run("management+digest", _management_seeds(device.device_id) + _management_seeds(DEVICE_ID), check)


@pytest.mark.parametrize("length", [255, 256, 300, 5000])
def test_a_too_long_user_name_is_a_clean_authentication_fault_on_postgresql(postgres, organisation, alice, caplog,
                                                                           length):
    """PostgreSQL enforces column lengths (SQLite does not): a user name longer than any account's must
    be refused where it is read, as a wrong sign-in, before it reaches django-axes' AccessAttempt or
    any other column; never an unexpected error with a traceback."""
    from axes.models import AccessAttempt
    from django.db.models.functions import Length

    create_ca_chain()
    username = "u" * (length - len("@example.com")) + "@example.com"
    bodies = {
        "policy": get_policies_body(username, "wrong"),
        "enrollment": rst_body(password_security(username, "wrong"), windows_csr(rsa_key(1)), device_id="LONGNAME"),
    }
    for name, body in bodies.items():
        caplog.clear()
        response = _post(service_url(organisation, name), body)
        assert response.status_code == 200, response.content[:300]
        assert b"s:Authentication" in response.content, response.content[:800]
        assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert not AccessAttempt.objects.annotate(length=Length("username")).filter(length__gt=254).exists()
