"""Who is talking: the forwarded client certificate (pki.clientcert) and its device (enrollment.clientcert)."""
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from django.test import RequestFactory

from accounts.models import AuditEvent
from enrollment import clientcert
from pki import ca
from pki import clientcert as forwarded_certificate
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain():
    return create_ca_chain()


def request_with(cert, remote="127.0.0.1"):
    return RequestFactory().post("/ManagementServer/MDM.svc", HTTP_X_SSL_CLIENT_CERT=certificate_header(cert),
                                 REMOTE_ADDR=remote)


def test_certificate_from_the_proxy_identifies_its_device(chain):
    device, cert = certified_device()
    found = forwarded_certificate.certificate_from_request(request_with(cert))
    assert found == cert
    assert clientcert.device_for_certificate(found) == device


def test_proxy_networks_can_be_configured(chain, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    _, cert = certified_device()
    assert forwarded_certificate.certificate_from_request(request_with(cert, "10.1.2.3")) == cert
    assert forwarded_certificate.certificate_from_request(request_with(cert, "127.0.0.1")) is None


def test_header_from_an_untrusted_address_is_ignored_and_audited(chain):
    _, cert = certified_device()
    assert forwarded_certificate.certificate_from_request(request_with(cert, "203.0.113.9")) is None
    event = AuditEvent.objects.get(action="management.untrusted_certificate_header")
    assert event.ip == "203.0.113.9"


def test_no_header_or_garbage_means_no_certificate(chain):
    assert forwarded_certificate.certificate_from_request(RequestFactory().post("/x", REMOTE_ADDR="127.0.0.1")) is None
    garbage = RequestFactory().post("/x", HTTP_X_SSL_CLIENT_CERT="-----BEGIN%20junk", REMOTE_ADDR="127.0.0.1")
    assert forwarded_certificate.certificate_from_request(garbage) is None


def test_certificate_of_another_ca_is_refused(chain):
    device, _ = certified_device()
    key = rsa_key(3)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.device_id)])
    now = datetime.now(UTC)
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(int(device.certificate_serial, 16)).not_valid_before(now - timedelta(minutes=1))
              .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    with pytest.raises(clientcert.ClientCertError, match="not issued by our CA"):
        clientcert.device_for_certificate(forged)


def test_expired_certificate_is_refused(chain):
    issuing_key = ca.private_key_of(ca.active_authorities()[1])
    issuing_cert = ca.active_chain()[1]
    now = datetime.now(UTC)
    expired = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")]))
               .issuer_name(issuing_cert.subject).public_key(rsa_key(11).public_key()).serial_number(42)
               .not_valid_before(now - timedelta(days=10)).not_valid_after(now - timedelta(days=1))
               .sign(issuing_key, hashes.SHA256()))
    with pytest.raises(clientcert.ClientCertError, match="expired"):
        clientcert.device_for_certificate(expired)


@pytest.mark.parametrize("state", ["replaced", "retired"])
def test_certificate_of_a_device_no_longer_enrolled_is_refused(chain, state):
    device, cert = certified_device(**{state: True})
    with pytest.raises(clientcert.ClientCertError, match="revoked") as refused:
        clientcert.device_for_certificate(cert)
    assert refused.value.device == device


def test_unenrolled_device_certificate_is_refused(chain):
    device, cert = certified_device()
    device.mark_unenrolled()
    with pytest.raises(clientcert.ClientCertError, match="revoked"):
        clientcert.device_for_certificate(cert)


def test_certificate_with_an_unknown_serial_is_refused(chain):
    device, cert = certified_device()
    device.delete()
    with pytest.raises(clientcert.ClientCertError, match="unknown certificate"):
        clientcert.device_for_certificate(cert)
