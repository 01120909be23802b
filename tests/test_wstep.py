import base64
import re
from datetime import timedelta
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from django.contrib.auth.hashers import MD5PasswordHasher
from django.utils import timezone
from lxml import etree

from accounts.models import AuditEvent
from enrollment import rst_retry
from enrollment.models import Device
from enrollment.soap import REQUEST_TOKEN_RESPONSE
from enrollment.wstep import PROVISIONING_DOC
from invitations.models import Invitation
from tests.enrollment_soap import (
    DEVICE_ID, HW_DEV_ID, NS, b64, fault_of, get_policies_body, parse, password_security, post, rst_body,
    service_url, windows_csr,
)
from tests.factories import PASSWORD, InvitationFactory, RetiredEnrollmentKeyFactory, UserFactory
from tests.factories_enrollment import DeviceFactory, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DEVICE_KEY = 20  # index into the cached test keys, away from the CA keys


@pytest.fixture
def ca_chain(db):
    return create_ca_chain()


@pytest.fixture
def url(organisation):
    return service_url(organisation, "enrollment")


@pytest.fixture
def invitation(alice):
    return InvitationFactory(user=alice, accepted=True)


def enroll(client, url, *, user="alice@example.com", password=PASSWORD, key=None, **items):
    csr = windows_csr(key or rsa_key(DEVICE_KEY), items.get("device_id", DEVICE_ID))
    return post(client, url, rst_body(password_security(user, password), csr, **items))


def provisioning_document(response):
    root = parse(response)
    token = root.find(f"s:Body/{{{WST}}}RequestSecurityTokenResponseCollection/{{{WST}}}RequestSecurityTokenResponse"
                      f"/{{{WST}}}RequestedSecurityToken/{{{WSSE}}}BinarySecurityToken", NS)
    assert token is not None, response.content[:800]
    assert token.get("ValueType") == PROVISIONING_DOC
    return etree.fromstring(base64.b64decode(token.text))


def certificates(document, store):
    """{thumbprint: certificate} under CertificateStore/<store>/<sub-store>."""
    found = {}
    for path in document.xpath(f"characteristic[@type='CertificateStore']/characteristic[@type='{store}']"
                               "/characteristic/characteristic[parm[@name='EncodedCertificate']]"):
        der = base64.b64decode(path.find("parm[@name='EncodedCertificate']").get("value"))
        found[path.get("type")] = (path.getparent().get("type"), x509.load_der_x509_certificate(der))
    return found


def assert_signed_by(certificate, issuer):
    issuer.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
                               certificate.signature_hash_algorithm)


def assert_nothing_enrolled(invitation=None):
    assert Device.objects.count() == 0
    assert not AuditEvent.objects.filter(action="device.enrolled").exists()
    if invitation is not None:
        invitation.refresh_from_db()
        assert invitation.completed_at is None


def test_windows_csr_enrolls_and_gets_a_certificate_chained_to_our_root(client, url, ca_chain, alice, invitation):
    response = enroll(client, url)
    root = parse(response)
    assert root.findtext("s:Header/a:Action", namespaces=NS) == REQUEST_TOKEN_RESPONSE
    assert root.findtext("s:Header/a:RelatesTo", namespaces=NS) == "urn:uuid:0d5a1441-5891-453b-becf-a2e5f6ea3749"
    created = root.findtext(f"s:Header/{{{WSSE}}}Security/{{{WSU}}}Timestamp/{{{WSU}}}Created", namespaces=NS)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created)

    document = provisioning_document(response)
    (root_thumb, (_, root_cert)), = certificates(document, "Root").items()
    (_, (_, issuing_cert)), = certificates(document, "CA").items()
    (device_thumb, (store, device_cert)), = certificates(document, "My").items()
    assert store == "User"
    assert_signed_by(issuing_cert, root_cert)
    assert_signed_by(device_cert, issuing_cert)
    assert device_cert.public_key().public_numbers() == rsa_key(DEVICE_KEY).public_key().public_numbers()
    assert device_cert.subject.rfc4514_string() == f"CN={DEVICE_ID}"

    device = Device.objects.get()
    assert device.user == alice
    assert device.status == Device.Status.ENROLLED
    assert device.device_id == DEVICE_ID and device.hw_dev_id == HW_DEV_ID
    assert device.name == "PC-ALICE" and device.os_version == "10.0.22631.4460" and device.os_edition == 48
    assert device.kind == Device.Kind.PC
    assert device.method == Device.Method.ONPREMISE
    assert device.enrollment_type == Device.EnrollmentType.FULL
    assert device.certificate_thumbprint == device_thumb
    assert device.certificate_serial == f"{device_cert.serial_number:X}".zfill(len(device.certificate_serial))
    assert device.certificate_not_after == device_cert.not_valid_after_utc
    assert [item for item in device.context_items if item[0] == "MAC"] == \
        [["MAC", "00-15-5D-01-02-03"], ["MAC", "00-15-5D-01-02-04"]]
    assert ["EnrollmentData", ""] in device.context_items
    assert device.appsrv_digest and device.client_digest and device.appsrv_nonce and device.client_nonce
    assert root_thumb not in (device_thumb,)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.COMPLETED
    assert AuditEvent.objects.filter(action="device.enrolled", target_id=str(device.pk)).exists()


def test_secrets_of_the_document_are_not_stored_in_clear(client, url, ca_chain, alice):
    document = provisioning_document(enroll(client, url))
    secrets = {p.get("value") for p in document.iter("parm") if p.get("name") == "AAUTHSECRET"}
    device = Device.objects.get()
    stored = " ".join(str(getattr(device, f.attname)) for f in Device._meta.concrete_fields)
    assert len(secrets) == 2 and not any(secret in stored for secret in secrets)


def test_device_enrollment_puts_the_certificate_in_the_system_store(client, url, ca_chain, alice):
    document = provisioning_document(enroll(client, url, enrollment_type="Device"))
    (_, (store, _cert)), = certificates(document, "My").items()
    assert store == "System"
    assert Device.objects.get().enrollment_type == Device.EnrollmentType.DEVICE


def test_hololens_edition_is_recorded_as_hololens_2(client, url, ca_chain, alice):
    provisioning_document(enroll(client, url, os_edition="136", device_name="HOLOLENS-7Q2"))
    assert Device.objects.get().kind == Device.Kind.HOLOLENS


def test_mdm_username_enrolls(client, url, ca_chain):
    carol = UserFactory(email="carol@example.com", mdm_username="CORP\\carol")
    provisioning_document(enroll(client, url, user="CORP\\carol"))
    device = Device.objects.get()
    assert device.user == carol and device.upn == "CORP\\carol"


def test_one_password_hash_per_enrollment(client, ca_chain, organisation, alice):
    with mock.patch.object(MD5PasswordHasher, "verify", autospec=True, side_effect=MD5PasswordHasher.verify) as verify:
        parse(post(client, service_url(organisation, "policy"), get_policies_body("alice@example.com", PASSWORD)))
        provisioning_document(enroll(client, service_url(organisation, "enrollment")))
    assert verify.call_count == 1


def test_rst_without_policy_call_still_checks_the_password(client, url, ca_chain, alice):
    subcode, _reason, _type = fault_of(enroll(client, url, password="not the password"))
    assert subcode == "s:Authentication"
    assert_nothing_enrolled()


def test_re_enrolling_the_same_device_replaces_the_earlier_enrollment(client, url, ca_chain, alice):
    earlier = DeviceFactory(user=alice, device_id=DEVICE_ID)
    provisioning_document(enroll(client, url))
    earlier.refresh_from_db()
    new = Device.objects.enrolled().get()
    assert earlier.status == Device.Status.REPLACED and earlier.revoked_at is not None
    assert earlier.replaced_by == new
    event = AuditEvent.objects.get(action="device.replaced")
    assert event.target_id == str(earlier.pk) and event.detail["match"] == "DeviceID"


def test_same_hardware_id_under_a_new_device_id_replaces_too(client, url, ca_chain, alice):
    earlier = DeviceFactory(user=alice, hw_dev_id=HW_DEV_ID)
    provisioning_document(enroll(client, url))
    earlier.refresh_from_db()
    assert earlier.status == Device.Status.REPLACED
    assert AuditEvent.objects.get(action="device.replaced").detail["match"] == "HWDevID"


def test_all_zero_hardware_id_never_replaces(client, url, ca_chain, alice):
    other = DeviceFactory(user=alice, hw_dev_id="0" * 64)
    provisioning_document(enroll(client, url, hw_dev_id="0" * 64))
    other.refresh_from_db()
    assert other.status == Device.Status.ENROLLED
    assert Device.objects.enrolled().count() == 2


def test_device_limit_reached_is_refused_with_device_cap_reached(client, url, ca_chain, alice, invitation):
    alice.device_limit = 1
    alice.save()
    DeviceFactory(user=alice)
    subcode, reason, error_type = fault_of(enroll(client, url))
    assert (subcode, error_type) == ("s:Authorization", "DeviceCapReached")
    assert "device limit" in reason
    assert Device.objects.count() == 1
    refusal = AuditEvent.objects.get(action="enrollment.refused")
    assert refusal.detail["error_type"] == "DeviceCapReached"


def test_replacing_a_device_does_not_count_against_the_limit(client, url, ca_chain, alice):
    alice.device_limit = 1
    alice.save()
    DeviceFactory(user=alice, device_id=DEVICE_ID)
    provisioning_document(enroll(client, url))
    assert Device.objects.enrolled().get().device_id == DEVICE_ID


def test_replaced_devices_do_not_count_against_the_limit(client, url, ca_chain, alice):
    alice.device_limit = 1
    alice.save()
    DeviceFactory(user=alice, replaced=True)
    provisioning_document(enroll(client, url))


def test_unknown_user_is_refused(client, url, ca_chain, alice):
    subcode, _reason, _type = fault_of(enroll(client, url, user="nobody@example.com"))
    assert subcode == "s:Authentication"
    assert_nothing_enrolled()


def test_disabled_user_is_refused(client, url, ca_chain, invitation, alice):
    alice.is_active = False
    alice.save()
    subcode, _reason, _type = fault_of(enroll(client, url))
    assert subcode == "s:Authorization"
    assert_nothing_enrolled(invitation)


def test_missing_security_header_is_refused(client, url, ca_chain, alice):
    csr = windows_csr(rsa_key(DEVICE_KEY))
    subcode, _reason, _type = fault_of(post(client, url, rst_body("", csr)))
    assert subcode == "s:Authentication"
    assert_nothing_enrolled()


def test_garbage_base64_csr_is_a_certificate_request_fault(client, url, ca_chain, alice, invitation):
    body = rst_body(password_security("alice@example.com", PASSWORD), "!!!not base64***")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:CertificateRequest"
    assert_nothing_enrolled(invitation)


def test_csr_signed_by_another_key_is_refused(client, url, ca_chain, alice):
    from simulator import build_windows_csr

    der = bytearray(build_windows_csr(rsa_key(DEVICE_KEY), DEVICE_ID))
    der[-1] ^= 0xFF  # the signature no longer matches the key in the request
    body = rst_body(password_security("alice@example.com", PASSWORD), b64(bytes(der)))
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:CertificateRequest"
    assert_nothing_enrolled()


def test_1024_bit_key_is_refused(client, url, ca_chain, alice):
    subcode, _reason, _type = fault_of(enroll(client, url, key=rsa_key(21, 1024)))
    assert subcode == "s:CertificateRequest"
    assert_nothing_enrolled()


def test_sha256_csr_enrolls(client, url, ca_chain, alice):
    csr = windows_csr(rsa_key(DEVICE_KEY), hash_name="sha256")
    provisioning_document(post(client, url, rst_body(password_security("alice@example.com", PASSWORD), csr)))


@pytest.mark.parametrize("items", [{"device_id": ""}, {"enrollment_type": "Everything"}, {"enrollment_type": ""}])
def test_missing_device_id_or_bad_enrollment_type_is_invalid_enrollment_data(client, url, ca_chain, alice, items):
    csr = windows_csr(rsa_key(DEVICE_KEY))
    body = rst_body(password_security("alice@example.com", PASSWORD), csr, **items)
    subcode, _reason, error_type = fault_of(post(client, url, body))
    assert (subcode, error_type) == ("s:MessageFormat", "InvalidEnrollmentData")
    assert_nothing_enrolled()


def test_wrong_token_type_is_a_message_format_fault(client, url, ca_chain, alice):
    csr = windows_csr(rsa_key(DEVICE_KEY))
    body = rst_body(password_security("alice@example.com", PASSWORD), csr).replace(
        b"DeviceEnrollmentToken<", b"SomethingElse<")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:MessageFormat"


def test_wrong_action_is_a_message_format_fault(client, url, ca_chain, alice):
    csr = windows_csr(rsa_key(DEVICE_KEY))
    body = rst_body(password_security("alice@example.com", PASSWORD), csr).replace(b"RST/wstep<", b"RST/other<")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:MessageFormat"
    assert_nothing_enrolled()


def test_truncated_request_is_a_message_format_fault(client, url, ca_chain, alice):
    csr = windows_csr(rsa_key(DEVICE_KEY))
    body = rst_body(password_security("alice@example.com", PASSWORD), csr)
    subcode, _reason, _type = fault_of(post(client, url, body[: len(body) // 2]))
    assert subcode == "s:MessageFormat"
    assert_nothing_enrolled()


def test_oversized_request_is_413(client, url, ca_chain, alice):
    response = post(client, url, b"<a>" + b"x" * (2 * 1024 * 1024) + b"</a>")
    assert response.status_code == 413
    assert_nothing_enrolled()


def test_without_a_ca_the_server_answers_an_enrollment_server_fault(client, url, alice):
    subcode, _reason, _type = fault_of(enroll(client, url))
    assert subcode == "s:EnrollmentServer"
    assert_nothing_enrolled()


def test_enrollment_on_a_retired_key_is_refused(client, organisation, ca_chain, alice):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    _subcode, reason, _type = fault_of(enroll(client, "/EnrollmentServer/oldkey1234567890/Enrollment.svc"))
    assert "new invitation" in reason
    assert_nothing_enrolled()


def test_a_failure_after_the_certificate_is_issued_writes_nothing(client, url, ca_chain, alice, invitation):
    with mock.patch("enrollment.wstep.provisioning_document.build_document", autospec=True, side_effect=RuntimeError("boom")):
        subcode, _reason, _type = fault_of(enroll(client, url))
    assert subcode == "a:InternalServiceFault"
    assert_nothing_enrolled(invitation)


# --- the same RST again after a lost answer (enrollment/rst_retry.py) ------------------------------

def same_rst_twice(client, url):
    body = rst_body(password_security("alice@example.com", PASSWORD), windows_csr(rsa_key(DEVICE_KEY)))
    first = provisioning_document(post(client, url, body))
    return body, first


def test_same_rst_again_is_answered_for_the_same_device_with_a_certificate_for_the_same_key(client, url, ca_chain,
                                                                                            alice):
    body, first = same_rst_twice(client, url)
    lost = Device.objects.get()

    second = provisioning_document(post(client, url, body))

    device = Device.objects.get()
    assert device.pk == lost.pk and device.status == Device.Status.ENROLLED
    (_, new), = certificates(second, "My").values()
    (_, old), = certificates(first, "My").values()
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    assert new.serial_number != old.serial_number
    assert device.previous_certificate_serial == lost.certificate_serial  # the lost answer's, if it arrived after all
    assert device.appsrv_digest != lost.appsrv_digest  # fresh secrets: the first ones were never kept
    assert AuditEvent.objects.filter(action="enrollment.retried").count() == 1
    assert AuditEvent.objects.filter(action="device.enrolled").count() == 1


def test_same_rst_after_the_device_checked_in_is_a_new_enrollment(client, url, ca_chain, alice):
    body, _first = same_rst_twice(client, url)
    Device.objects.update(last_seen_at=timezone.now())  # it had its answer

    provisioning_document(post(client, url, body))

    assert Device.objects.count() == 2 and Device.objects.enrolled().count() == 1
    assert not AuditEvent.objects.filter(action="enrollment.retried").exists()


def test_same_rst_after_the_retry_window_is_a_new_enrollment(client, url, ca_chain, alice):
    body, _first = same_rst_twice(client, url)
    Device.objects.update(enrolled_at=timezone.now() - rst_retry.RETRY_WINDOW - timedelta(seconds=1))

    provisioning_document(post(client, url, body))

    assert Device.objects.count() == 2
    assert not AuditEvent.objects.filter(action="enrollment.retried").exists()


def test_same_rst_with_another_password_is_not_an_answer_again(client, url, ca_chain, alice):
    _body, _first = same_rst_twice(client, url)
    other = rst_body(password_security("alice@example.com", "not her password"), windows_csr(rsa_key(DEVICE_KEY)))

    subcode, _reason, _type = fault_of(post(client, url, other))

    assert subcode == "s:Authentication"
    assert Device.objects.count() == 1 and not AuditEvent.objects.filter(action="enrollment.retried").exists()


def test_the_stored_request_digest_is_keyed(client, url, ca_chain, alice, settings):
    same_rst_twice(client, url)
    digest = Device.objects.get().enrollment_request_digest
    assert len(digest) == 64

    settings.SECRET_KEY = "another secret key, another digest of the same message" * 2
    body = rst_body(password_security("alice@example.com", PASSWORD), windows_csr(rsa_key(DEVICE_KEY)))
    provisioning_document(post(client, url, body))

    assert Device.objects.count() == 2  # the old digest no longer matches: a new enrollment
