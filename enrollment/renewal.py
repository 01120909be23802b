"""ROBO certificate renewal (MS-MDE2 3.5.4.1.1.1; Microsoft's "Certificate Renewal" page).

RenewPeriod days before its certificate expires (WSTEP/Renew in the provisioning document), Windows
posts an RST with RequestType Renew to the enrollment URL it enrolled through, over TLS with its
current client certificate and without a user token. Its BinarySecurityToken is a PKCS#7 SignedData
made with the current key around a PKCS#10 for a fresh key. We check, in this order, each failure
with its fault (MS-MDE2 2.2.10), writing nothing but the audit entry:

- a client certificate came from the TLS terminator (enrollment/clientcert.py) — else Authentication;
- it is ours, known and current — another CA or an unknown one: Authentication; its device replaced,
  unenrolled or retired (revoked), or the certificate expired: Authorization + NotEligibleToRenew
  (Windows never renews an expired certificate automatically; the device enrolls again);
- the SignedData names that certificate as its signer and its signature verifies with its key —
  else Authentication (a signature is the device's proof of possession);
- the inner PKCS#10 parses and verifies (pki.csr, Windows quirks accepted, RSA >= 2048) —
  else CertificateRequest;
- a DeviceID the request repeats (context item, CSR extension) is the device's — else Authorization
  + NotEligibleToRenew;
- the certificate is inside its renewal window — else Authorization + NotEligibleToRenew.

Then a new certificate for the same subject and the new key is issued and recorded (the old one
stays accepted until the device first presents the new one: Device.renew_certificate), and the
answer is the usual RSTRC around a document holding only the CertificateStore and
APPLICATION/PROVIDER-ID.
"""
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import transaction

from accounts.models import AuditEvent
from pki import ca, cms
from pki import clientcert as forwarded_certificate
from pki.csr import CsrError, parse_csr

from . import auth, clientcert, provisioning_document, soap, wstep
from .models import Device
from .soap import ENROLLMENT_NS, WSSE_NS, WST_NS, ErrorType, Fault, SoapFault

logger = logging.getLogger(__name__)

# The PKCS7 value type as devices send it, and as Microsoft's renewal sample writes it.
PKCS7_VALUE_TYPES = (f"{ENROLLMENT_NS}#PKCS7", f"{WSSE_NS}#PKCS7")

BAD_REQUEST = "The certificate renewal request is not valid."
NOT_AUTHENTICATED = "The device could not be identified by its certificate. Enroll the device again."
NOT_ELIGIBLE = "This device's certificate cannot be renewed. Enroll the device again."
NOT_YET = "This device's certificate is not due for renewal yet."


@dataclass
class RenewalRequest:
    signed_data: bytes
    items: list = field(default_factory=list)  # [name, value] AdditionalContext pairs, in order

    @property
    def device_id(self):
        """The DeviceID context item, "" when absent (Microsoft's renewal sample sends none)."""
        return next((value for name, value in self.items if name == "DeviceID"), "")


def parse_request(body):
    """The Renew RST body -> RenewalRequest; raises SoapFault(MessageFormat) for a malformed one."""
    token_type = soap.text(body, f"{{{WST_NS}}}TokenType")
    if token_type != wstep.TOKEN_TYPE:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, log_detail=f"TokenType {token_type!r}")
    token = body.find(f"{{{WSSE_NS}}}BinarySecurityToken")
    if token is None:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, log_detail="no BinarySecurityToken")
    value_type = soap.attribute(token, "ValueType", WSSE_NS)
    encoding = soap.attribute(token, "EncodingType", WSSE_NS)
    if value_type not in PKCS7_VALUE_TYPES or encoding not in ("", wstep.BASE64):
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST,
                        log_detail=f"BinarySecurityToken {value_type!r} {encoding!r}")
    signed_data = auth.decode_base64(token.text or "")
    if not signed_data:
        raise SoapFault(Fault.CERTIFICATE_REQUEST, BAD_REQUEST, log_detail="PKCS#7 is not base64")
    return RenewalRequest(signed_data=signed_data, items=wstep.context_items(body))


def handle(request, envelope, key):
    renewal = parse_request(envelope.body)
    ip = request.META.get("REMOTE_ADDR") or None
    device = None
    try:
        certificate = presented_certificate(request)
        device = device_of(certificate)
        csr = signed_csr(renewal, certificate)
        check_device_id(renewal, csr, device)
        check_window(certificate)
        new_certificate, document = renew(device, certificate, csr, ip=ip)
    except SoapFault as fault:
        detail = {"fault": fault.subcode, "error_type": fault.error_type or "",
                  "reason": fault.log_detail or fault.reason}
        if device is None:
            # No certificate of ours: counted per address and reason (AuditEvent.record_refusal).
            AuditEvent.record_refusal("device.renewal_refused", ip=ip, reason=detail["reason"], detail=detail)
        else:
            AuditEvent.record(None, "device.renewal_refused", device, ip=ip, detail=detail)
        raise
    logger.info("renewal: %s device %s (%s) renewed to certificate %s", envelope.activity_id, device.pk,
                device.device_id, ca.serial_hex(new_certificate))
    return wstep.response_envelope(envelope, document)


def presented_certificate(request):
    certificate = forwarded_certificate.certificate_from_request(request)
    if certificate is None:
        raise SoapFault(Fault.AUTHENTICATION, NOT_AUTHENTICATED,
                        log_detail="no client certificate from a trusted proxy")
    return certificate


def device_of(certificate):
    """The enrolled device whose certificate this is; the right fault otherwise."""
    try:
        return clientcert.device_for_certificate(certificate)
    except clientcert.ClientCertError as exc:
        if exc.device is not None:
            raise SoapFault(Fault.AUTHORIZATION, NOT_ELIGIBLE, error_type=ErrorType.NOT_ELIGIBLE_TO_RENEW,
                            log_detail=exc.reason) from None
        if certificate.not_valid_after_utc <= datetime.now(UTC) and ca.verify_issued(certificate):
            raise SoapFault(Fault.AUTHORIZATION, NOT_ELIGIBLE, error_type=ErrorType.NOT_ELIGIBLE_TO_RENEW,
                            log_detail=f"certificate {ca.serial_hex(certificate)} expired") from None
        raise SoapFault(Fault.AUTHENTICATION, NOT_AUTHENTICATED, log_detail=exc.reason) from None


def signed_csr(renewal, certificate):
    """The PKCS#10 inside the SignedData, once the signature is the presented certificate's."""
    try:
        signed = cms.verify_signed_data(renewal.signed_data, certificate)
    except cms.WrongSigner as exc:
        raise SoapFault(Fault.AUTHENTICATION, NOT_AUTHENTICATED,
                        log_detail=f"PKCS#7 not signed by the presented certificate: {exc}") from None
    except cms.CmsError as exc:
        raise SoapFault(Fault.AUTHENTICATION, NOT_AUTHENTICATED, log_detail=f"PKCS#7: {exc}") from None
    try:
        return parse_csr(signed.content)
    except CsrError as exc:
        raise SoapFault(Fault.CERTIFICATE_REQUEST, wstep.BAD_CSR, log_detail=f"CSR: {exc}") from None


def check_device_id(renewal, csr, device):
    for where, value in (("context", renewal.device_id), ("CSR", csr.device_id or "")):
        if value and value.lower() != device.device_id.lower():
            raise SoapFault(Fault.AUTHORIZATION, NOT_ELIGIBLE, error_type=ErrorType.NOT_ELIGIBLE_TO_RENEW,
                            log_detail=f"{where} DeviceID {value[:64]!r} is not device {device.pk}'s")


def check_window(certificate):
    """Renew only inside the window the device was given (WSTEP/Renew/RenewPeriod), allowing
    the CA's clock skew for a device whose clock runs a little ahead."""
    opens = certificate.not_valid_after_utc - timedelta(days=settings.ENROLLMENT_RENEW_PERIOD_DAYS) - ca.CLOCK_SKEW
    if datetime.now(UTC) < opens:
        raise SoapFault(Fault.AUTHORIZATION, NOT_YET, error_type=ErrorType.NOT_ELIGIBLE_TO_RENEW,
                        log_detail=f"renewal window opens {opens:%Y-%m-%d %H:%M} UTC")


def renew(device, certificate, csr, *, ip=None):
    """Issue and record the new certificate; (certificate, provisioning document bytes)."""
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    renewed_from = ca.serial_hex(certificate)
    with transaction.atomic():
        # Locked: a device retrying while our first answer is in flight renews once after the other.
        device = Device.objects.select_for_update().get(pk=device.pk)
        if renewed_from not in (device.certificate_serial, device.previous_certificate_serial):
            raise SoapFault(Fault.AUTHORIZATION, NOT_ELIGIBLE, error_type=ErrorType.NOT_ELIGIBLE_TO_RENEW,
                            log_detail=f"certificate {renewed_from} was replaced meanwhile")
        new_certificate, root, issuing = wstep.issue_certificate(csr.public_key, common_name)
        document = provisioning_document.build_renewal_document(
            root=root, issuing=issuing, device_cert=new_certificate, enrollment_type=device.enrollment_type,
            provider_id=settings.ENROLLMENT_PROVIDER_ID,
        )
        device.renew_certificate(serial=ca.serial_hex(new_certificate), thumbprint=ca.thumbprint(new_certificate),
                                 not_after=new_certificate.not_valid_after_utc, renewed_from=renewed_from)
        AuditEvent.record(None, "device.certificate_renewed", device, ip=ip, detail={
            "old_certificate": renewed_from, "certificate": device.certificate_serial,
            "not_after": device.certificate_not_after.isoformat(),
        })
    return new_certificate, document
