"""Which device is talking: the client certificate nginx forwarded (read by pki/clientcert.py)
must be one our issuing CA signed, within its validity, and the current certificate of a live
enrollment, or the one its last renewal replaced until the device first presents the new one
(Device.renew_certificate).
"""
import functools
from datetime import UTC, datetime

from django.db.models import Q

from accounts.models import AuditEvent
from pki import ca

from .models import Device

class ClientCertError(Exception):
    """The certificate does not identify a device we manage. `reason` is for logs and audit only."""

    def __init__(self, reason, device=None):
        super().__init__(reason)
        self.reason = reason
        self.device = device


@functools.lru_cache(maxsize=1024)
def _serial_and_thumbprint(cert):
    return ca.serial_hex(cert), ca.thumbprint(cert)


def by_serial(devices, serial):
    """The device of `devices` (a queryset) holding the certificate of that serial, current or
    previous, with the active issuing CA's PEM (`issuing_ca_pem`): a queryset of at most one row."""
    return (devices.filter(Q(certificate_serial=serial) | Q(previous_certificate_serial=serial))
            .annotate(issuing_ca_pem=ca.active_issuing_pem())[:1])


def device_for_certificate(cert, find=None):
    """The enrolled Device whose current certificate `cert` is; raises ClientCertError.

    `find(serial)`: the device of that serial or None, read with by_serial (default: among all
    devices); the OMA-DM endpoint passes one that locks the row and annotates what the session needs.
    The active issuing CA is read with the device, in one query, and alone only when no device has
    that serial (to tell a foreign certificate from an unknown one)."""
    serial, thumbprint = _serial_and_thumbprint(cert)
    if find is None:
        device = by_serial(Device.objects.all(), serial).first()
    else:
        device = find(serial)
    issued = ca.verify_issued(cert) if device is None else ca.verify_issued(cert, issuing_pem=device.issuing_ca_pem)
    if not issued:
        raise ClientCertError("certificate not issued by our CA")
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise ClientCertError("certificate expired or not yet valid")
    current = device is not None and (device.certificate_serial, device.certificate_thumbprint) == (serial, thumbprint)
    previous = device is not None and (device.previous_certificate_serial,
                                       device.previous_certificate_thumbprint) == (serial, thumbprint)
    if not (current or previous):
        raise ClientCertError(f"unknown certificate serial {serial}")
    if device.status != Device.Status.ENROLLED or device.revoked_at is not None:
        raise ClientCertError(f"certificate of a {device.status} device (revoked)", device=device)
    if current and device.previous_certificate_serial:
        # The first use of a renewed certificate: the device has switched, the old one is done.
        retired = device.confirm_certificate()
        AuditEvent.record(None, "device.certificate_switched", device, detail={"retired_certificate": retired,
                                                                               "certificate": serial})
    return device
