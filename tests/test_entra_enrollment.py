"""Enrollment with an Entra ID token (Microsoft Entra integration with MDM): discovery, users created and tied
to the tenant, Entra joins named after the Entra device id, user-less runs, the terms-of-use blob, and
a token enrolling one device only."""
import base64
import hashlib
import time
from datetime import UTC, datetime, timedelta

import jwt as entra_jwt

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from accounts.models import AuditEvent, AuthPolicy, Organisation, User
from enrollment import auth, entra
from enrollment.models import Device, EntraIdentity, EntraSettings, SpentEntraToken
from enrollment.soap import WSSE_NS, WST_NS
from enrollment.tasks import purge_spent_entra_tokens
from tests import entra_tokens as tokens
from tests.enrollment_soap import (
    NS, discover_body, fault_of, get_policies_token_body, parse, post, service_url,
)
from tests.factories import UserFactory
from tests.factories_enrollment import (
    TEST_TENANT, EntraIdentityFactory, EntraSettingsFactory, JwksSetFactory, create_ca_chain,
)

pytestmark = pytest.mark.django_db

AUTODISCOVERY = "/EnrollmentServer/Discovery.svc"


@pytest.fixture
def entra_on(organisation):
    create_ca_chain()
    EntraSettingsFactory()
    JwksSetFactory()


def provisioning_document(response):
    root = parse(response)
    token = root.find(f"s:Body/{{{WST_NS}}}RequestSecurityTokenResponseCollection/{{{WST_NS}}}"
                      f"RequestSecurityTokenResponse/{{{WST_NS}}}RequestedSecurityToken/{{{WSSE_NS}}}BinarySecurityToken", NS)
    assert token is not None, response.content[:800]
    return etree.fromstring(base64.b64decode(token.text))


def device_certificate(document):
    """(store location, certificate) of the device certificate under My."""
    location = document.find("characteristic[@type='CertificateStore']/characteristic[@type='My']/characteristic")
    encoded = location.find("characteristic/parm[@name='EncodedCertificate']").get("value")
    return location.get("type"), x509.load_der_x509_certificate(base64.b64decode(encoded))


def common_name(certificate):
    return certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def refusal_reason():
    return AuditEvent.objects.get(action="enrollment.refused").detail["reason"]


# Discovery (see enrollment/discovery.py for why Federated keeps AuthenticationServiceUrl).

def discover(client, policies):
    root = parse(post(client, AUTODISCOVERY, discover_body(policies=policies)))
    return root.find(".//d:DiscoverResult", NS)


def test_discovery_answers_federated_while_entra_is_on(client, entra_on):
    result = discover(client, ("OnPremise", "Federated"))
    assert result.findtext("d:AuthPolicy", namespaces=NS) == "Federated"
    assert result.findtext("d:AuthenticationServiceUrl", namespaces=NS).endswith("/SignIn")


def test_discovery_keeps_on_premise_for_devices_offering_only_that(client, entra_on):
    assert discover(client, ("OnPremise",)).findtext("d:AuthPolicy", namespaces=NS) == "OnPremise"


def discover_as(client, email, policies=("OnPremise", "Federated")):
    body = discover_body(policies=policies).replace(b"<EmailAddress>alice@example.com</EmailAddress>",
                                                    f"<EmailAddress>{email}</EmailAddress>".encode())
    return parse(post(client, AUTODISCOVERY, body)).find(".//d:DiscoverResult", NS).findtext("d:AuthPolicy",
                                                                                              namespaces=NS)


@pytest.mark.parametrize("email, policy", [
    ("dana@contoso.com", "Federated"),
    ("Dana@CONTOSO.com", "Federated"),
    ("dana@Contoso.com.", "Federated"),
    ("alice@example.com", "OnPremise"),  # a local user keeps the organisation's own method
    ("mallory@contoso.com.evil.example", "OnPremise"),
    ("mallory@sub.contoso.com", "OnPremise"),  # verified domains are listed one by one, subdomains too
    ("contoso.com", "OnPremise"),
    ("", "Federated"),  # only a user-less Entra device names no account
])
def test_discovery_answers_federated_to_the_tenants_verified_domains_only(client, entra_on, email, policy):
    EntraSettings.objects.filter(pk=1).update(domains=["contoso.com"])
    assert discover_as(client, email) == policy


def test_discovery_keeps_a_federated_organisation_federated_for_local_users(client, entra_on, organisation):
    Organisation.objects.update(auth_policy=AuthPolicy.FEDERATED)
    EntraSettings.objects.filter(pk=1).update(domains=["contoso.com"])
    assert discover_as(client, "alice@example.com") == "Federated"


def test_discovery_without_verified_domains_answers_federated_to_every_address(client, entra_on):
    assert discover_as(client, "alice@example.com") == "Federated"


def test_discovery_keeps_on_premise_while_entra_lacks_signing_keys(client, organisation):
    EntraSettingsFactory()
    assert discover(client, ("OnPremise", "Federated")).findtext("d:AuthPolicy", namespaces=NS) == "OnPremise"


def test_sign_in_page_token_is_accepted_while_entra_answers_federated(client, entra_on, organisation, alice):
    parse(post(client, service_url(organisation, "policy"), get_policies_token_body(auth.issue_token(alice))))


def test_sign_in_page_token_is_refused_when_neither_entra_nor_federated(client, organisation, alice):
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"),
                                            get_policies_token_body(auth.issue_token(alice))))
    assert subcode == "s:Authentication"


# Work accounts (EnrollmentType Full).

def test_first_enrollment_creates_the_user_from_the_token_and_ties_it_to_the_tenant(client, entra_on, organisation):
    response = tokens.enroll(client, organisation, tokens.make_token(upn="Dana@Contoso.com"))
    store, certificate = device_certificate(provisioning_document(response))
    user = User.objects.get(email="dana@contoso.com")
    assert user.display_name == "Dana Scully" and not user.has_usable_password()
    assert EntraIdentity.objects.get(user=user).object_id == tokens.USER_OID
    device = Device.objects.get()
    assert (device.user, device.method, device.enrollment_type, device.upn) == (user, "entra", "Full", "dana@contoso.com")
    assert device.get_method_display() == "Entra ID"
    assert store == "User" and common_name(certificate) == device.device_id
    assert AuditEvent.objects.filter(action="user.created_from_entra", target_id=str(user.pk)).exists()


def test_next_enrollment_finds_the_user_by_object_id_even_after_a_rename(client, entra_on, organisation):
    tokens.enroll(client, organisation, tokens.make_token(), device_key=50)
    parse(tokens.enroll(client, organisation, tokens.make_token(upn="dana.scully@contoso.com",
                                                                unique_name=None), device_key=51,
                        device_id="2" * 32, hw_dev_id="B" * 64))
    assert User.objects.count() == 1
    assert Device.objects.enrolled().filter(user__email=tokens.UPN).count() == 2


def test_user_already_in_the_portal_is_linked_not_duplicated(client, entra_on, organisation):
    dana = UserFactory(email=tokens.UPN)
    parse(tokens.enroll(client, organisation, tokens.make_token()))
    assert EntraIdentity.objects.get().user == dana
    assert Device.objects.get().user == dana and User.objects.count() == 1


def test_user_tied_to_another_entra_object_of_the_tenant_is_refused(client, entra_on, organisation):
    EntraIdentityFactory(user=UserFactory(email=tokens.UPN), object_id="99999999-0000-4000-8000-000000000000")
    subcode, _reason, _type = fault_of(tokens.enroll(client, organisation, tokens.make_token()))
    assert subcode == "s:Authentication"
    assert "tied to another Entra object" in refusal_reason()
    assert not Device.objects.exists()


def test_disabled_user_is_not_allowed(client, entra_on, organisation):
    EntraIdentityFactory(user=UserFactory(email=tokens.UPN, is_active=False), object_id=tokens.USER_OID)
    subcode, _reason, _type = fault_of(tokens.get_policies(client, organisation, tokens.make_token()))
    assert subcode == "s:Authorization"


def test_work_account_without_a_user_is_refused(client, entra_on, organisation):
    token = tokens.make_token(upn=None, unique_name=None)
    subcode, _reason, _type = fault_of(tokens.enroll(client, organisation, token))
    assert subcode == "s:Authentication"
    assert "without a user for a Full enrollment" in refusal_reason()
    assert not User.objects.filter(email__endswith="contoso.com").exists()


def test_failed_enrollment_creates_no_user(client, organisation):
    EntraSettingsFactory()
    JwksSetFactory()  # but no CA yet: the certificate cannot be issued after the user was made
    response = tokens.enroll(client, organisation, tokens.make_token())
    assert fault_of(response)[0] == "s:EnrollmentServer"
    assert not User.objects.filter(email=tokens.UPN).exists() and not EntraIdentity.objects.exists()


# Entra join (EnrollmentType Device).

def test_entra_join_certificate_is_named_after_the_entra_device_id(client, entra_on, organisation):
    response = tokens.enroll(client, organisation, tokens.make_token(), enrollment_type="Device")
    store, certificate = device_certificate(provisioning_document(response))
    assert store == "System" and common_name(certificate) == tokens.DEVICE_GUID
    device = Device.objects.get()
    assert device.entra_device_id == tokens.DEVICE_GUID and device.enrollment_type == "Device"
    assert device.user.email == tokens.UPN


def test_entra_join_without_a_device_id_is_refused(client, entra_on, organisation):
    response = tokens.enroll(client, organisation, tokens.make_token(deviceid=None), enrollment_type="Device")
    assert fault_of(response)[0] == "s:Authentication"
    assert "without deviceid" in refusal_reason()


def test_userless_entra_join_enrolls_the_device_without_a_user(client, entra_on, organisation):
    token = tokens.make_token(upn=None, unique_name=None, name=None, oid="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    parse(tokens.get_policies(client, organisation, token))
    provisioning_document(tokens.enroll(client, organisation, token, enrollment_type="Device"))
    device = Device.objects.get()
    assert device.user is None and device.upn == "" and device.entra_device_id == tokens.DEVICE_GUID
    assert not EntraIdentity.objects.exists()


# The terms-of-use blob, back as EnrollmentData.

def terms_blob(**overrides):
    values = {"tenant_id": TEST_TENANT, "object_id": tokens.USER_OID, "upn": tokens.UPN, "name": "", "device_id": ""}
    values.update(overrides)
    return entra.issue_terms_blob(entra.EntraClaims(**values), "c0ffee00-0000-4000-8000-000000000001", False)


def test_enrollment_data_from_our_terms_page_is_accepted(client, entra_on, organisation):
    blob = terms_blob()
    provisioning_document(tokens.enroll(client, organisation, tokens.make_token(), enrollment_data=blob))
    assert ["EnrollmentData", blob] in Device.objects.get().context_items


@pytest.mark.parametrize("blob, reason", [
    (lambda: terms_blob()[:-3] + "xyz", "not signed by this server"),
    (lambda: signing.dumps({"tid": TEST_TENANT, "oid": tokens.USER_OID}, salt="another.salt"), "not signed by this server"),
    (lambda: terms_blob(object_id="bbbbbbbb-0000-4000-8000-000000000000"), "another Entra user"),
])
def test_enrollment_data_not_ours_or_not_this_users_is_refused(client, entra_on, organisation, blob, reason):
    response = tokens.enroll(client, organisation, tokens.make_token(), enrollment_data=blob())
    assert fault_of(response)[0] == "s:Authentication"
    assert reason in refusal_reason()
    assert not Device.objects.exists()


@pytest.mark.parametrize("enrollment_data", ["null", "NULL", " null ", "", "   "])
def test_enrollment_data_null_empty_or_blank_is_no_blob(client, entra_on, organisation, enrollment_data):
    # Windows sends the item so when no terms-of-use blob came back: treated as an absent item.
    provisioning_document(tokens.enroll(client, organisation, tokens.make_token(), enrollment_data=enrollment_data))
    assert Device.objects.get().method == "entra"


def test_stale_enrollment_data_is_refused(client, entra_on, organisation, monkeypatch):
    old = time.time() - 2 * 24 * 3600
    monkeypatch.setattr("django.core.signing.time.time", lambda: old)
    blob = terms_blob()
    monkeypatch.undo()
    response = tokens.enroll(client, organisation, tokens.make_token(), enrollment_data=blob)
    assert fault_of(response)[0] == "s:Authentication"
    assert "expired" in refusal_reason()


def test_terms_url_is_fixed_on_the_enrollment_host():
    assert reverse("enrollment:terms") == "/EnrollmentServer/TermsOfUse"


# One token, one enrollment: Windows sends the token to GetPolicies, then RST, and again on a retry.

def spent_tokens():
    return list(SpentEntraToken.objects.values_list("token_id", "device__device_id"))


def test_token_serves_the_policy_step_and_one_enrollment_then_its_replay_is_refused(client, entra_on, organisation):
    token = tokens.make_token()
    parse(tokens.get_policies(client, organisation, token))
    body = tokens.rst_entra_body(token)
    provisioning_document(post(client, service_url(organisation, "enrollment"), body))

    # The token again, from another PC.
    other = tokens.rst_entra_body(token, device_key=51, device_id="2" * 32, hw_dev_id="B" * 64)
    subcode, reason, _type = fault_of(post(client, service_url(organisation, "enrollment"), other))
    assert subcode == "s:Authentication" and reason == entra.ALREADY_USED
    event = AuditEvent.objects.get(action="enrollment.refused")
    uti = entra_jwt.decode(token, options={"verify_signature": False})["uti"]
    assert event.detail["reason"].startswith(f"Entra token uti:{uti} replayed: it enrolled device ")
    assert event.target_id == str(User.objects.get(email=tokens.UPN).pk)
    assert Device.objects.count() == 1 and spent_tokens() == [(f"uti:{uti}", tokens.DEVICE_ID)]


def test_the_same_pc_enrolling_again_within_the_tokens_lifetime_is_a_re_enrollment(client, entra_on, organisation):
    # Windows keeps its Entra token for about an hour: a user who unenrolls and enrolls the same PC
    # again presents the token it enrolled with, in a new RST (a new key). (The very same RST sent
    # again after a lost answer is answered again for the same device: enrollment/rst_retry.py.)
    token = tokens.make_token()
    provisioning_document(post(client, service_url(organisation, "enrollment"), tokens.rst_entra_body(token)))
    first = Device.objects.get()

    again = tokens.rst_entra_body(token, device_key=52)
    provisioning_document(post(client, service_url(organisation, "enrollment"), again))
    first.refresh_from_db()
    second = Device.objects.exclude(pk=first.pk).get()
    assert first.status != Device.Status.ENROLLED and second.status == Device.Status.ENROLLED
    assert second.device_id == first.device_id
    uti = entra_jwt.decode(token, options={"verify_signature": False})["uti"]
    assert list(SpentEntraToken.objects.values_list("token_id", "device")) == [(f"uti:{uti}", second.pk)]
    assert not AuditEvent.objects.filter(action="enrollment.refused").exists()


def test_replayed_token_cannot_enroll_another_device_either(client, entra_on, organisation):
    token = tokens.make_token(upn=None, unique_name=None, oid="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    provisioning_document(tokens.enroll(client, organisation, token, enrollment_type="Device"))
    response = tokens.enroll(client, organisation, token, enrollment_type="Device", device_key=51,
                             device_id="2" * 32, hw_dev_id="B" * 64)
    assert fault_of(response)[:2] == ("s:Authentication", entra.ALREADY_USED)
    assert "replayed" in refusal_reason()
    assert Device.objects.count() == 1


def test_retry_after_a_failed_enrollment_with_the_same_token_enrolls(client, organisation):
    EntraSettingsFactory()
    JwksSetFactory()
    token = tokens.make_token()
    assert fault_of(tokens.enroll(client, organisation, token))[0] == "s:EnrollmentServer"  # no CA yet
    assert not SpentEntraToken.objects.exists()

    create_ca_chain()
    provisioning_document(tokens.enroll(client, organisation, token))
    assert len(spent_tokens()) == 1 and Device.objects.count() == 1


def test_refused_enrollment_leaves_the_token_good_for_the_next_try(client, entra_on, organisation):
    UserFactory(email=tokens.UPN, device_limit=0)
    token = tokens.make_token()
    assert fault_of(tokens.enroll(client, organisation, token))[2] == "DeviceCapReached"
    User.objects.filter(email=tokens.UPN).update(device_limit=1)
    provisioning_document(tokens.enroll(client, organisation, token))


@pytest.mark.parametrize("overrides, prefix", [
    ({"jti": "d0c7a1e0-6c2b-4b8e-9d3f-5a1b2c3d4e5f"}, "jti:d0c7a1e0-6c2b-4b8e-9d3f-5a1b2c3d4e5f"),
    ({"uti": None}, "sha256:"),
    ({"uti": "x" * 65}, "sha256:"),
])
def test_token_is_known_by_its_jti_else_its_uti_else_its_hash(client, entra_on, organisation, overrides, prefix):
    token = tokens.make_token(**overrides)
    provisioning_document(tokens.enroll(client, organisation, token))
    [(token_id, _device)] = spent_tokens()
    assert token_id.startswith(prefix) and len(token_id) <= 80
    if prefix == "sha256:":
        assert token_id == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    another_pc = {"device_key": 51, "device_id": "2" * 32, "hw_dev_id": "B" * 64}
    assert fault_of(tokens.enroll(client, organisation, token, **another_pc))[1] == entra.ALREADY_USED


def test_spent_token_is_kept_until_the_token_expires_plus_the_clock_skew(client, entra_on, organisation):
    exp = int(time.time()) + 1800
    provisioning_document(tokens.enroll(client, organisation, tokens.make_token(exp=exp)))
    spent = SpentEntraToken.objects.get()
    assert spent.expires_at == datetime.fromtimestamp(exp + entra.LEEWAY_SECONDS, UTC)
    assert spent.device == Device.objects.get()


def test_purge_forgets_only_tokens_that_have_expired(entra_on):
    now = timezone.now()
    SpentEntraToken.objects.create(token_id="uti:old", expires_at=now - timedelta(seconds=1))
    SpentEntraToken.objects.create(token_id="uti:live", expires_at=now + timedelta(minutes=10))
    assert purge_spent_entra_tokens.delay().get() == 1
    assert list(SpentEntraToken.objects.values_list("token_id", flat=True)) == ["uti:live"]


def test_a_token_past_its_purge_is_refused_as_expired(client, entra_on, organisation):
    """Purging is safe: by then the token no longer passes validation."""
    token = tokens.make_token(exp=int(time.time()) - entra.LEEWAY_SECONDS - 1)
    assert fault_of(tokens.enroll(client, organisation, token))[0] == "s:Authentication"
    assert "expired" in refusal_reason()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_worker_purges_expired_spent_tokens_on_its_schedule(live_tasks, settings):
    assert settings.CELERY_BEAT_SCHEDULE["purge-spent-entra-tokens"]["task"] == purge_spent_entra_tokens.name
    now = timezone.now()
    SpentEntraToken.objects.create(token_id="uti:old", expires_at=now - timedelta(minutes=1))
    SpentEntraToken.objects.create(token_id="uti:live", expires_at=now + timedelta(minutes=10))

    purge_spent_entra_tokens.delay()

    deadline = time.monotonic() + 30
    while SpentEntraToken.objects.filter(token_id="uti:old").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(SpentEntraToken.objects.values_list("token_id", flat=True)) == ["uti:live"]


def test_queries_of_an_entra_enrollment_are_fixed(client, entra_on, organisation, django_assert_num_queries):
    """The RST of an Entra enrollment: 23 statements for a tenant's new user before the user was found
    by link or email in one query (twice: the token's check and the enrollment's lock), the token spent
    by one INSERT … ON CONFLICT (no savepoint), the device limit and first device read together, the
    audit events written by one INSERT and no invitation looked up for a user made a moment ago. Counted
    here with the two savepoints (and releases) of the enrollment's transactions inside the test's."""
    parse(tokens.get_policies(client, organisation, tokens.make_token()))  # the signing key, read once per process
    with django_assert_num_queries(19):
        parse(tokens.enroll(client, organisation, tokens.make_token()))
    # The same user's next PC: the user is found by its link, locked, and its devices counted; a
    # first-device invitation check is not needed (it has a device).
    with django_assert_num_queries(18):
        parse(tokens.enroll(client, organisation, tokens.make_token(jti="second-token"), device_key=51,
                            device_id="2" * 32, hw_dev_id="B" * 64))
    assert Device.objects.enrolled().filter(user__email=tokens.UPN).count() == 2
