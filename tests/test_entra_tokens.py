"""Every way an Entra token can be forged or stale (the token checks of enrollment/entra.py), through
the policy and enrollment endpoints: each is refused with s:Authentication, audited with its reason
(never the token), and enrolls nothing."""
import base64
import json
import time

import pytest

from accounts.models import AuditEvent
from enrollment.models import Device, EntraKeyAlert, EntraSettings
from tests import entra_tokens as tokens
from tests.enrollment_soap import fault_of, parse
from tests.factories_enrollment import (
    TEST_CLIENT_ID, TEST_TENANT, EntraSettingsFactory, JwksSetFactory, create_ca_chain,
)

pytestmark = pytest.mark.django_db

OTHER_TENANT = "0b0c0d0e-1111-4222-8333-944445555666"
NOW = int(time.time())


@pytest.fixture(autouse=True)
def entra(organisation):
    create_ca_chain()
    EntraSettingsFactory()
    JwksSetFactory()


def send(client, organisation, endpoint, token=None, **kwargs):
    if endpoint == "policy":
        return tokens.get_policies(client, organisation, token, **kwargs)
    return tokens.enroll(client, organisation, token, **kwargs)


def assert_refused(response, reason, token=None):
    subcode, message, _error_type = fault_of(response)
    assert subcode == "s:Authentication"
    event = AuditEvent.objects.get(action="enrollment.refused")
    assert reason in event.detail["reason"], event.detail
    if token:
        assert token not in json.dumps(event.detail) and token not in message
        assert token.split(".")[1][:40] not in json.dumps(event.detail)
    assert not Device.objects.exists()
    return event


@pytest.fixture(params=["policy", "enrollment"])
def endpoint(request):
    return request.param


# The control: a genuine token passes both endpoints.

def test_genuine_token_gets_the_policies(client, organisation):
    root = parse(tokens.get_policies(client, organisation, tokens.make_token()))
    assert root.find(".//{http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy}GetPoliciesResponse") is not None


def test_genuine_v2_token_with_the_client_id_audience_is_accepted(client, organisation):
    token = tokens.make_token(aud=TEST_CLIENT_ID, iss=f"https://login.microsoftonline.com/{TEST_TENANT}/v2.0", ver="2.0",
                              upn=None, unique_name=None, preferred_username=tokens.UPN)
    parse(tokens.get_policies(client, organisation, token))
    assert not AuditEvent.objects.filter(action="enrollment.refused").exists()


def test_url_safe_base64_without_padding_is_read(client, organisation):
    token = tokens.make_token(name="Dana ~~~ Scully ???")
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    parse(tokens.get_policies(client, organisation, encoded=encoded))


def test_token_expired_within_the_five_minute_leeway_is_accepted(client, organisation):
    parse(tokens.get_policies(client, organisation, tokens.make_token(exp=int(time.time()) - 120)))


# The forgeries.

def test_token_signed_with_another_key_is_refused(client, organisation, endpoint):
    token = tokens.make_token(key_index=tokens.OTHER_KEY)
    assert_refused(send(client, organisation, endpoint, token), "signature does not verify", token)


def test_unsigned_alg_none_token_is_refused(client, organisation, endpoint):
    token = tokens.unsigned_token()
    assert_refused(send(client, organisation, endpoint, token), "alg 'none' refused", token)


def test_hs256_token_signed_with_the_public_key_is_refused(client, organisation, endpoint):
    token = tokens.hs256_with_public_key()
    assert_refused(send(client, organisation, endpoint, token), "alg 'HS256' refused", token)


def test_token_of_another_tenant_is_refused(client, organisation, endpoint):
    token = tokens.make_token(tid=OTHER_TENANT, iss=f"https://sts.windows.net/{OTHER_TENANT}/")
    assert_refused(send(client, organisation, endpoint, token), "tenant (tid)", token)


def test_token_for_another_audience_is_refused(client, organisation, endpoint):
    token = tokens.make_token(aud="https://mdm.fabrikam.com")
    assert_refused(send(client, organisation, endpoint, token), "audience (aud)", token)


def test_token_from_another_issuer_is_refused(client, organisation, endpoint):
    token = tokens.make_token(iss=f"https://evil.example.com/{TEST_TENANT}/")
    assert_refused(send(client, organisation, endpoint, token), "issuer (iss)", token)


def test_token_naming_our_tenant_but_issued_for_another_is_refused(client, organisation):
    token = tokens.make_token(iss=f"https://sts.windows.net/{OTHER_TENANT}/")
    assert_refused(tokens.get_policies(client, organisation, token), "issuer (iss)", token)


def test_expired_token_is_refused(client, organisation, endpoint):
    token = tokens.make_token(exp=int(time.time()) - 6 * 60, nbf=NOW - 3600, iat=NOW - 3600)
    assert_refused(send(client, organisation, endpoint, token), "expired", token)


def test_token_not_yet_valid_is_refused(client, organisation, endpoint):
    token = tokens.make_token(nbf=int(time.time()) + 6 * 60)
    assert_refused(send(client, organisation, endpoint, token), "not yet valid", token)


def test_token_without_nbf_is_refused(client, organisation):
    token = tokens.make_token(nbf=None)
    assert_refused(tokens.get_policies(client, organisation, token), "'nbf' missing", token)


def test_token_with_an_unknown_kid_is_refused_and_alerts_the_administrators(client, organisation, endpoint):
    token = tokens.make_token(kid="rotated-by-microsoft")
    assert_refused(send(client, organisation, endpoint, token), "unknown signing key", token)
    alert = EntraKeyAlert.objects.open().get()
    assert alert.kid == "rotated-by-microsoft" and alert.occurrences == 1


def test_repeated_unknown_kid_bumps_one_alert(client, organisation):
    token = tokens.make_token(kid="rotated-by-microsoft")
    tokens.get_policies(client, organisation, token)
    tokens.get_policies(client, organisation, token)
    assert EntraKeyAlert.objects.get().occurrences == 2


def test_key_of_a_set_no_longer_trusted_is_unknown(client, organisation):
    JwksSetFactory(inactive=True, kid="old-key", key_index=tokens.SIGNING_KEY)
    token = tokens.make_token(kid="old-key")
    assert_refused(tokens.get_policies(client, organisation, token), "unknown signing key", token)


def test_token_without_the_mdm_delegation_scope_is_refused(client, organisation, endpoint):
    token = tokens.make_token(scp="openid profile")
    assert_refused(send(client, organisation, endpoint, token), "mdm_delegation", token)


def test_token_without_any_scope_is_refused(client, organisation):
    token = tokens.make_token(scp=None)
    assert_refused(tokens.get_policies(client, organisation, token), "mdm_delegation", token)


@pytest.mark.parametrize("encoded, reason", [
    ("!!! not base64 !!!", "not base64"),
    (base64.b64encode(b"\xff\xfe\x00binary").decode(), "not ASCII"),
    (base64.b64encode(b"hello, not a token").decode(), "not a JWT"),
    (base64.b64encode(b"a.b.c").decode(), "not a JWT"),
    ("", "not base64"),
])
def test_garbage_token_is_refused(client, organisation, endpoint, encoded, reason):
    assert_refused(send(client, organisation, endpoint, encoded=encoded), reason)


def test_token_is_refused_while_entra_enrollment_is_switched_off(client, organisation, endpoint):
    EntraSettings.objects.filter(pk=1).update(enabled=False)
    token = tokens.make_token()
    assert_refused(send(client, organisation, endpoint, token), "switched off", token)


def test_unknown_kid_on_a_token_not_meant_for_us_raises_no_alert(client, organisation):
    token = tokens.make_token(kid="made-up", aud="https://mdm.fabrikam.com")
    assert_refused(tokens.get_policies(client, organisation, token), "unknown signing key", token)
    assert not EntraKeyAlert.objects.exists()


def test_open_unknown_kid_alerts_are_capped(client, organisation, monkeypatch):
    monkeypatch.setattr("enrollment.entra_keys.MAX_OPEN_ALERTS", 2)
    for kid in ("first", "second", "third", "first"):
        tokens.get_policies(client, organisation, tokens.make_token(kid=kid))
    assert sorted(EntraKeyAlert.objects.values_list("kid", "occurrences")) == [("first", 2), ("second", 1)]
