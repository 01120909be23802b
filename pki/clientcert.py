"""The TLS client certificate forwarded by nginx (MS-MDM: the device authenticates with the
certificate it enrolled, over TLS).

nginx terminates TLS with `ssl_verify_client optional_no_ca` and passes the certificate it received
as `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;` (URL-escaped PEM). Anyone can send
that header, so it is believed only when the connection comes from an address in TRUSTED_PROXIES
(loopback by default; the connection's own address, never a forwarded one: mdmportal/proxies.py); from
anywhere else it is ignored and audited. Which device holds the certificate is enrollment's question
(enrollment/clientcert.py).
"""
import functools
import logging
import urllib.parse

from cryptography import x509

from accounts.models import AuditEvent
from mdmportal.proxies import peer_address, trusted_proxy

logger = logging.getLogger(__name__)

HEADER = "HTTP_X_SSL_CLIENT_CERT"
MAX_HEADER = 16 * 1024


def certificate_from_request(request):
    """The client certificate nginx forwarded, or None. A header from an untrusted address is
    ignored (and audited); an unreadable one from the proxy counts as no certificate."""
    value = request.META.get(HEADER, "")
    if not value:
        return None
    # The connection's own address: only our proxy sets this header, and only the proxy is trusted.
    peer = peer_address(request)
    if not trusted_proxy(peer):
        logger.warning("ignored %s from untrusted address %s", HEADER, peer)
        AuditEvent.record_refusal("management.untrusted_certificate_header",
                                  ip=request.META.get("REMOTE_ADDR") or None, detail={"remote_addr": peer})
        return None
    if len(value) > MAX_HEADER:
        logger.warning("client certificate header of %s bytes ignored", len(value))
        return None
    cert = _parse_header(value)
    if cert is None:
        logger.warning("client certificate header is not a PEM certificate")
    return cert


@functools.lru_cache(maxsize=1024)
def _parse_header(value):
    """The certificate in a header value, or None; remembered per process, as a device sends the same
    header at every message (certificates are immutable)."""
    try:
        return x509.load_pem_x509_certificate(urllib.parse.unquote(value).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
