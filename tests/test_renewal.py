"""ROBO certificate renewal through the enrollment endpoint (MS-MDE2 3.5): a Renew RST with a PKCS#7 signed
by the device's current key, over client TLS as nginx forwards it."""
import base64
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from lxml import etree
from lxml.builder import ElementMaker

from accounts.models import AuditEvent
from enrollment import clientcert
from pki import ca
from enrollment.models import Device
from enrollment.soap import AC_NS, ENROLLMENT_NS, SOAP_NS, WSA_NS, WSSE_NS, WST_NS
from enrollment.wstep import BASE64, PROVISIONING_DOC, TOKEN_TYPE
from simulator import build_windows_csr, signed_renewal_request
from tests.enrollment_soap import CONTENT_TYPE, NS, fault_of, parse, password_security, post, rst_body, service_url, windows_csr
from tests.factories import PASSWORD, RetiredEnrollmentKeyFactory
from tests.factories_enrollment import DeviceFactory, certificate_header, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

RENEW = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew"
PKCS7 = f"{ENROLLMENT_NS}#PKCS7"
PKCS7_AS_DOCUMENTED = f"{WSSE_NS}#PKCS7"
PKCS10 = f"{ENROLLMENT_NS}#PKCS10"
MESSAGE_ID = "urn:uuid:61a17f2c-42e9-4a45-9c85-f15c1c8baee8"
NEW_KEY = 21  # index into the cached test keys: the device's fresh key

S = ElementMaker(namespace=SOAP_NS, nsmap={"s": SOAP_NS, "a": WSA_NS})
A = ElementMaker(namespace=WSA_NS)
T = ElementMaker(namespace=WST_NS, nsmap={None: WST_NS})
O = ElementMaker(namespace=WSSE_NS, nsmap={None: WSSE_NS})
AC = ElementMaker(namespace=AC_NS, nsmap={None: AC_NS})


@pytest.fixture
def chain(db):
    return create_ca_chain()


@pytest.fixture
def url(organisation):
    return service_url(organisation, "enrollment")


class Holder:
    """A device as the test drives it: its row, current certificate and key."""

    def __init__(self, device, cert, key):
        self.device, self.cert, self.key = device, cert, key


def enrolled(key_index=0, validity_days=30, **fields):
    """An enrolled device whose certificate (from the active issuing CA) expires in `validity_days`:
    with the default, inside the 60-day renewal window."""
    key = rsa_key(10 + key_index)
    device_id = fields.pop("device_id", None) or secrets.token_hex(16).upper()
    cert = ca.issue_device_certificate(key.public_key(), device_id, validity_days=validity_days)
    device = DeviceFactory(device_id=device_id, certificate_serial=ca.serial_hex(cert),
                           certificate_thumbprint=ca.thumbprint(cert), certificate_not_after=cert.not_valid_after_utc,
                           **fields)
    return Holder(device, cert, key)


def renewal_request(holder, *, new_key=None, device_id=None, signer=None):
    """The SignedData a Windows device sends: a CSR for a fresh key, signed by its current key."""
    csr = build_windows_csr(new_key or rsa_key(NEW_KEY), device_id or holder.device.device_id)
    cert, key = signer or (holder.cert, holder.key)
    return signed_renewal_request(cert, key, csr)


def renewal_body(signed, *, device_id=None, value_type=PKCS7, token_type=TOKEN_TYPE, token_text=None):
    items = [("DeviceType", "CIMClient_Windows"), ("ApplicationVersion", "10.0.22631.4460")]
    if device_id:
        items.append(("DeviceID", device_id))
    token = O.BinarySecurityToken(token_text if token_text is not None else base64.b64encode(signed).decode(),
                                  ValueType=value_type, EncodingType=BASE64)
    rst = T.RequestSecurityToken(
        T.TokenType(token_type), T.RequestType(RENEW), token,
        AC.AdditionalContext(*[AC.ContextItem(AC.Value(value), Name=name) for name, value in items]),
    )
    must = {f"{{{SOAP_NS}}}mustUnderstand": "1"}
    header = S.Header(A.Action(f"{ENROLLMENT_NS}/RST/wstep", **must), A.MessageID(MESSAGE_ID),
                      A.To("https://mdm.example.com/EnrollmentServer/Enrollment.svc", **must))
    return etree.tostring(S.Envelope(header, S.Body(rst)))


def renew(client, url, holder, signed=None, *, presented=None, remote="127.0.0.1", **body):
    """POST a renewal as nginx forwards it: the TLS client certificate URL-escaped in the header."""
    signed = signed if signed is not None else renewal_request(holder)
    extra = {"REMOTE_ADDR": remote}
    certificate = presented if presented is not None else holder.cert
    if certificate is not False:
        extra["HTTP_X_SSL_CLIENT_CERT"] = certificate_header(certificate)
    return client.post(url, renewal_body(signed, **body), content_type=CONTENT_TYPE, secure=True, **extra)


def renewal_document(response):
    root = parse(response)
    assert root.findtext("s:Header/a:RelatesTo", namespaces=NS) == MESSAGE_ID
    token = root.find(f"s:Body/{{{WST_NS}}}RequestSecurityTokenResponseCollection/{{{WST_NS}}}RequestSecurityTokenResponse"
                      f"/{{{WST_NS}}}RequestedSecurityToken/{{{WSSE_NS}}}BinarySecurityToken", NS)
    assert token is not None, response.content[:800]
    assert token.get("ValueType") == PROVISIONING_DOC
    return etree.fromstring(base64.b64decode(token.text))


def client_certificate(document, store="User"):
    (parm,) = document.xpath(f"characteristic[@type='CertificateStore']/characteristic[@type='My']"
                             f"/characteristic[@type='{store}']/characteristic/parm[@name='EncodedCertificate']")
    return x509.load_der_x509_certificate(base64.b64decode(parm.get("value")))


def assert_refused(response, holder, subcode, error_type=None):
    got_subcode, _reason, got_type = fault_of(response)
    assert (got_subcode, got_type) == (subcode, error_type)
    if holder is not None:
        before = (holder.device.certificate_serial, holder.device.certificate_thumbprint)
        holder.device.refresh_from_db()
        assert (holder.device.certificate_serial, holder.device.certificate_thumbprint) == before
        assert holder.device.previous_certificate_serial == "" and holder.device.certificate_renewed_at is None
    assert not AuditEvent.objects.filter(action="device.certificate_renewed").exists()
    assert AuditEvent.objects.filter(action="device.renewal_refused").exists()


# --- renewing -------------------------------------------------------------------------------------

def test_due_device_gets_a_new_certificate_for_its_new_key(client, url, chain):
    holder = enrolled()

    document = renewal_document(renew(client, url, holder))

    new = client_certificate(document)
    root, issuing = ca.active_chain()
    new.verify_directly_issued_by(issuing)
    assert new.public_key().public_numbers() == rsa_key(NEW_KEY).public_key().public_numbers()
    assert new.subject == holder.cert.subject
    assert new.serial_number != holder.cert.serial_number
    assert new.not_valid_after_utc > holder.cert.not_valid_after_utc
    holder.device.refresh_from_db()
    assert holder.device.certificate_serial == ca.serial_hex(new)
    assert holder.device.certificate_thumbprint == ca.thumbprint(new)
    assert holder.device.certificate_not_after == new.not_valid_after_utc
    assert holder.device.previous_certificate_serial == ca.serial_hex(holder.cert)
    assert holder.device.certificate_renewed_at is not None
    event = AuditEvent.objects.get(action="device.certificate_renewed")
    assert event.detail["old_certificate"] == ca.serial_hex(holder.cert)
    assert event.detail["certificate"] == ca.serial_hex(new)


def test_renewal_answer_holds_only_the_certificate_store_and_provider_id(client, url, chain, settings):
    settings.ENROLLMENT_PROVIDER_ID = "contoso-mdm"
    holder = enrolled()

    document = renewal_document(renew(client, url, holder))

    assert [c.get("type") for c in document.findall("characteristic")] == ["CertificateStore", "APPLICATION"]
    store = document[0]
    assert [c.get("type") for c in store] == ["Root", "CA", "My"]
    assert [c.get("type") for c in store.find("characteristic[@type='My']")] == ["User"]
    application = document[1]
    assert [(p.get("name"), p.get("value")) for p in application] == [("PROVIDER-ID", "contoso-mdm")]


def test_device_enrollment_renews_into_the_system_store(client, url, chain):
    holder = enrolled(device_enrollment=True)

    document = renewal_document(renew(client, url, holder))

    assert client_certificate(document, "System").subject == holder.cert.subject


def test_the_documented_pkcs7_value_type_and_a_matching_device_id_are_accepted(client, url, chain):
    holder = enrolled()

    renewal_document(renew(client, url, holder, value_type=PKCS7_AS_DOCUMENTED,
                           device_id=holder.device.device_id.lower()))


def test_new_certificate_identifies_the_device_and_retires_the_old_one_on_first_use(client, url, chain):
    holder = enrolled()
    new = client_certificate(renewal_document(renew(client, url, holder)))

    # Until the device shows it has the new certificate, the old one still works (an answer can be lost).
    assert clientcert.device_for_certificate(holder.cert) == holder.device
    assert clientcert.device_for_certificate(new) == holder.device

    holder.device.refresh_from_db()
    assert holder.device.previous_certificate_serial == ""
    assert AuditEvent.objects.filter(action="device.certificate_switched", detail__retired_certificate=ca.serial_hex(holder.cert)).exists()
    with pytest.raises(clientcert.ClientCertError, match="unknown certificate"):
        clientcert.device_for_certificate(holder.cert)


def test_a_device_that_lost_the_answer_renews_again_with_its_old_certificate(client, url, chain):
    holder = enrolled()
    lost = client_certificate(renewal_document(renew(client, url, holder)))

    second = client_certificate(renewal_document(renew(client, url, holder, renewal_request(holder, new_key=rsa_key(22)))))

    holder.device.refresh_from_db()
    assert holder.device.certificate_serial == ca.serial_hex(second)
    assert holder.device.previous_certificate_serial == ca.serial_hex(holder.cert)
    with pytest.raises(clientcert.ClientCertError, match="unknown certificate"):
        clientcert.device_for_certificate(lost)
    assert clientcert.device_for_certificate(second) == holder.device


def test_renewing_again_with_the_new_certificate_retires_the_first(client, url, chain, settings):
    settings.ENROLLMENT_RENEW_PERIOD_DAYS = 400  # the new certificate is due at once
    holder = enrolled()
    new = client_certificate(renewal_document(renew(client, url, holder)))
    current = Holder(holder.device, new, rsa_key(NEW_KEY))

    third = client_certificate(renewal_document(renew(client, url, current, renewal_request(current, new_key=rsa_key(22)))))

    holder.device.refresh_from_db()
    assert holder.device.certificate_serial == ca.serial_hex(third)
    assert holder.device.previous_certificate_serial == ca.serial_hex(new)
    with pytest.raises(clientcert.ClientCertError):
        clientcert.device_for_certificate(holder.cert)


def test_renewal_still_works_through_a_retired_enrollment_key(client, chain, organisation):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    holder = enrolled()

    renewal_document(renew(client, "/EnrollmentServer/oldkey1234567890/Enrollment.svc", holder))


# --- refusals -------------------------------------------------------------------------------------

def test_expired_certificate_never_renews(client, url, chain):
    issuing_row = ca.active_authorities()[1]
    issuing = ca.certificate_of(issuing_row)
    key = rsa_key(10)
    device_id = secrets.token_hex(16).upper()
    now = datetime.now(UTC)
    expired = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
               .issuer_name(issuing.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(minutes=1))
               .sign(ca.private_key_of(issuing_row), hashes.SHA256()))
    device = DeviceFactory(device_id=device_id, certificate_serial=ca.serial_hex(expired),
                           certificate_thumbprint=ca.thumbprint(expired), certificate_not_after=expired.not_valid_after_utc)

    assert_refused(renew(client, url, Holder(device, expired, key)), Holder(device, expired, key),
                   "s:Authorization", "NotEligibleToRenew")


def test_certificate_of_an_unenrolled_device_cannot_renew(client, url, chain):
    holder = enrolled()
    holder.device.mark_unenrolled()

    assert_refused(renew(client, url, holder), None, "s:Authorization", "NotEligibleToRenew")
    holder.device.refresh_from_db()
    assert holder.device.certificate_serial == ca.serial_hex(holder.cert)


def test_certificate_of_a_replaced_device_cannot_renew(client, url, chain):
    holder = enrolled(replaced=True)

    assert_refused(renew(client, url, holder), None, "s:Authorization", "NotEligibleToRenew")


def test_request_signed_with_another_devices_key_is_refused(client, url, chain):
    alice_pc, bob_pc = enrolled(0), enrolled(1)

    signed = renewal_request(alice_pc, signer=(bob_pc.cert, bob_pc.key))

    assert_refused(renew(client, url, alice_pc, signed), alice_pc, "s:Authentication")
    bob_pc.device.refresh_from_db()
    assert bob_pc.device.previous_certificate_serial == ""


def test_request_naming_the_certificate_but_signed_by_another_key_is_refused(client, url, chain):
    holder, other = enrolled(0), enrolled(1)

    signed = renewal_request(holder, signer=(holder.cert, other.key))

    assert_refused(renew(client, url, holder, signed), holder, "s:Authentication")


def test_certificate_from_another_ca_is_refused(client, url, chain):
    holder = enrolled()
    key = rsa_key(3)
    name = holder.cert.subject
    now = datetime.now(UTC)
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(holder.cert.issuer).public_key(key.public_key())
              .serial_number(holder.cert.serial_number).not_valid_before(now - timedelta(minutes=1))
              .not_valid_after(now + timedelta(days=10)).sign(key, hashes.SHA256()))
    signed = renewal_request(holder, signer=(forged, key))

    assert_refused(renew(client, url, holder, signed, presented=forged), holder, "s:Authentication")


def test_bad_signature_is_refused(client, url, chain):
    holder = enrolled()
    signed = bytearray(renewal_request(holder))
    signed[-1] ^= 0x01  # the last bytes of the DER are the SignerInfo's signature

    assert_refused(renew(client, url, holder, bytes(signed)), holder, "s:Authentication")


def test_tampered_inner_csr_is_refused(client, url, chain):
    holder = enrolled()
    csr = build_windows_csr(rsa_key(NEW_KEY), holder.device.device_id)
    signed = bytearray(signed_renewal_request(holder.cert, holder.key, csr))
    at = bytes(signed).index(csr) + len(csr) // 2
    signed[at] ^= 0x01

    assert_refused(renew(client, url, holder, bytes(signed)), holder, "s:Authentication")


def test_signed_csr_that_does_not_verify_itself_is_a_certificate_request_fault(client, url, chain):
    holder = enrolled()
    csr = bytearray(build_windows_csr(rsa_key(NEW_KEY), holder.device.device_id))
    csr[-1] ^= 0x01  # the CSR's own signature, then signed properly by the device

    signed = signed_renewal_request(holder.cert, holder.key, bytes(csr))

    assert_refused(renew(client, url, holder, signed), holder, "s:CertificateRequest")


def test_csr_for_a_small_key_is_refused(client, url, chain):
    holder = enrolled()
    signed = renewal_request(holder, new_key=rsa_key(23, bits=1024))

    assert_refused(renew(client, url, holder, signed), holder, "s:CertificateRequest")


def test_certificate_outside_its_renewal_window_is_not_renewed(client, url, chain):
    holder = enrolled(validity_days=365)

    assert_refused(renew(client, url, holder), holder, "s:Authorization", "NotEligibleToRenew")


def test_renewal_window_follows_the_setting(client, url, chain, settings):
    settings.ENROLLMENT_RENEW_PERIOD_DAYS = 20
    holder = enrolled(validity_days=30)

    assert_refused(renew(client, url, holder), holder, "s:Authorization", "NotEligibleToRenew")


@pytest.mark.parametrize("where", ["context", "csr"])
def test_another_device_id_in_the_request_is_refused(client, url, chain, where):
    holder = enrolled()
    other = secrets.token_hex(16).upper()
    if where == "context":
        response = renew(client, url, holder, device_id=other)
    else:
        response = renew(client, url, holder, renewal_request(holder, device_id=other))

    assert_refused(response, holder, "s:Authorization", "NotEligibleToRenew")


def test_certificate_header_from_an_untrusted_address_is_ignored(client, url, chain):
    holder = enrolled()

    assert_refused(renew(client, url, holder, remote="203.0.113.9"), holder, "s:Authentication")
    assert AuditEvent.objects.filter(action="management.untrusted_certificate_header", ip="203.0.113.9").exists()


def test_renewal_without_a_client_certificate_is_refused(client, url, chain):
    holder = enrolled()

    assert_refused(renew(client, url, holder, presented=False), holder, "s:Authentication")


def test_a_password_renewal_is_not_served(client, url, chain, alice):
    """Manual renewal (UsernameToken, PKCS#10) is not what we offer: ROBO only."""
    body = rst_body(password_security("alice@example.com", PASSWORD), windows_csr(rsa_key(NEW_KEY)), request_type=RENEW)

    subcode, _reason, _type = fault_of(post(client, url, body))

    assert subcode == "s:MessageFormat"
    assert not Device.objects.exists()


@pytest.mark.parametrize("body, subcode", [
    ({"value_type": PKCS10}, "s:MessageFormat"),
    ({"token_type": "urn:something-else"}, "s:MessageFormat"),
    ({"token_text": "not base64!"}, "s:CertificateRequest"),
    ({"token_text": base64.b64encode(b"\x30\x03\x02\x01\x00").decode()}, "s:Authentication"),
])
def test_malformed_renewal_requests_get_the_right_fault(client, url, chain, body, subcode):
    holder = enrolled()

    got, _reason, _type = fault_of(renew(client, url, holder, **body))

    assert got == subcode
    holder.device.refresh_from_db()
    assert holder.device.previous_certificate_serial == ""


# --- the offer ------------------------------------------------------------------------------------

def test_enrollment_provisioning_document_offers_robo_renewal(client, url, chain, alice, settings):
    settings.ENROLLMENT_RENEW_PERIOD_DAYS, settings.ENROLLMENT_RENEW_RETRY_DAYS = 45, 5
    body = rst_body(password_security("alice@example.com", PASSWORD), windows_csr(rsa_key(NEW_KEY)))

    root = parse(post(client, url, body))

    token = root.find(f".//{{{WSSE_NS}}}BinarySecurityToken")
    document = etree.fromstring(base64.b64decode(token.text))
    (renew_block,) = document.xpath("characteristic[@type='CertificateStore']/characteristic[@type='My']"
                                    "/characteristic[@type='WSTEP']/characteristic[@type='Renew']")
    assert [(p.get("name"), p.get("value"), p.get("datatype")) for p in renew_block] == [
        ("ROBOSupport", "true", "boolean"), ("RenewPeriod", "45", "integer"), ("RetryInterval", "5", "integer"),
    ]
