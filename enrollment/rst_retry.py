"""The same RequestSecurityToken sent again after a lost answer.

When the answer to an enrollment is lost on the way (a dropped connection, a proxy timing out), the
device has no certificate and sends the very same message again: the same credentials and the same
certificate request. Enrolling it a second time would make a second device record (the first one
"replaced") and would be refused outright for a single-use credential already spent by the first
answer (a federated sign-in token, a registration PIN; MS-MDE2 3.1.4.2 leaves retries to the
client). So each enrollment keeps a keyed hash of its message (wsse:Security header and RST body,
canonicalised: W3C Exclusive XML Canonicalization), and a message with the same hash is answered
again for the same device record: a new certificate for the same key (the CSR is the same) and new
OMA-DM digest secrets, since the first ones were never kept in clear. The certificate of the lost
answer stays accepted, as after a renewal, until the device presents the new one.

Only while nothing shows the device got the first answer: the same DeviceID, still enrolled, never
seen over OMA-DM, never renewed, enrolled less than RETRY_WINDOW ago. The hash is an HMAC keyed with
SECRET_KEY, so the stored value says nothing about the password it covers. A message that differs
in anything (another key, another device, another token) is a new enrollment, checked as usual.
"""
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from lxml import etree

from accounts.models import AuditEvent
from pki import ca

from . import rst_sql
from .models import Device

RETRY_WINDOW = timedelta(minutes=15)
_SALT = "mdmportal.enrollment.rst-retry"


def request_digest(envelope):
    """HMAC-SHA256 (hex) of the canonical wsse:Security header and RST body of `envelope`."""
    security = envelope.security()
    parts = [etree.tostring(element, method="c14n", exclusive=True) if element is not None else b""
             for element in (security, envelope.body)]
    return salted_hmac(_SALT, b"\0".join(parts), algorithm="sha256").hexdigest()


def answer_again(digest, token_request, *, ip=None):
    """(device, provisioning document) when this message was answered moments ago and the device
    cannot have received that answer; None otherwise."""
    from . import wstep  # wstep calls this module

    since = timezone.now() - RETRY_WINDOW
    if not rst_sql.answered_rst_exists(digest, token_request.device_id, since):  # nearly every RST: one query
        return None
    answered = Device.objects.filter(enrollment_request_digest=digest, device_id=token_request.device_id,
                                     status=Device.Status.ENROLLED, revoked_at__isnull=True,
                                     last_seen_at__isnull=True, certificate_renewed_at__isnull=True,
                                     enrolled_at__gte=since)
    with transaction.atomic():
        device = answered.select_for_update().first()  # again, locked: a concurrent retry waits here
        if device is None:
            return None
        # The name the first certificate had (enrollment.entra.certificate_name).
        joined = device.entra_device_id and device.enrollment_type == Device.EnrollmentType.DEVICE
        csr = wstep.parse_certificate_request(token_request)
        certificate, root, issuing = wstep.issue_certificate(csr.public_key,
                                                             device.entra_device_id if joined else device.device_id)
        document = wstep.enrollment_document(certificate, root, issuing, token_request, upn=device.upn)
        lost = device.certificate_serial
        device.previous_certificate_serial = device.certificate_serial
        device.previous_certificate_thumbprint = device.certificate_thumbprint
        device.certificate_serial = ca.serial_hex(certificate)
        device.certificate_thumbprint = ca.thumbprint(certificate)
        device.certificate_not_after = certificate.not_valid_after_utc
        appauth = wstep.digest_material(document, device.device_id)
        for name, value in appauth.items():
            setattr(device, name, value)
        device.save(update_fields=["certificate_serial", "certificate_thumbprint", "certificate_not_after",
                                   "previous_certificate_serial", "previous_certificate_thumbprint", *appauth])
        AuditEvent.record(None, "enrollment.retried", device, ip=ip, detail={
            "device_id": device.device_id, "lost_certificate": lost, "certificate": device.certificate_serial,
        })
    return device, document
