"""Requests forwarded by nginx: who the proxy is, and which client it forwarded.

gunicorn sees every request coming from nginx (127.0.0.1). Left at that, every audit entry would
carry nginx's address and the per-address sign-in lockout (django-axes) would count everyone's
failures together: six wrong passwords from anyone would lock every user out. nginx passes the
address it accepted the connection from in X-Real-IP (`proxy_set_header X-Real-IP $remote_addr;`,
always overwritten, deploy/nginx.conf). That header is believed only from TRUSTED_PROXIES, the same
addresses whose client-certificate header is believed (enrollment/clientcert.py); from anyone else
it is ignored, so a client cannot choose the address it is audited and locked out under.
"""
import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

REAL_IP_HEADER = "HTTP_X_REAL_IP"
# Where the proxy's own address is kept once REMOTE_ADDR holds the client's. Not an HTTP_* key, so
# no request header can set it.
PEER_KEY = "mdmportal.proxy_address"


def trusted_proxy(address):
    """Is `address` one of TRUSTED_PROXIES (addresses or networks)?"""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    for entry in settings.TRUSTED_PROXIES:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            logger.error("TRUSTED_PROXIES entry %r is not an address or network", entry)
    return False


def peer_address(request):
    """The address that connected to us: the proxy when one forwarded the request, else the client."""
    return request.META.get(PEER_KEY) or request.META.get("REMOTE_ADDR", "")


class ClientAddressMiddleware:
    """REMOTE_ADDR becomes the client's address when a trusted proxy forwarded the request; the
    proxy's is kept for peer_address(). First in MIDDLEWARE, so that everything after it (axes,
    audit entries) sees the client."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        forwarded = request.META.get(REAL_IP_HEADER, "").strip()
        peer = request.META.get("REMOTE_ADDR", "")
        if forwarded and trusted_proxy(peer):
            try:
                client = str(ipaddress.ip_address(forwarded))
            except ValueError:
                logger.warning("ignored X-Real-IP %r from proxy %s: not an address", forwarded[:64], peer)
            else:
                request.META[PEER_KEY] = peer
                request.META["REMOTE_ADDR"] = client
        return self.get_response(request)
