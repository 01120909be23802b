"""Who is on the other end of a request when nginx sits in front of us (deploy/nginx.conf).

Behind the proxy every connection comes from the proxy's address, so the sign-in lockout per address
(django-axes), the audit log and the OMA-DM client-certificate check would all see one address. nginx
says who the client is in X-Forwarded-For and whether the connection was HTTPS in X-Forwarded-Proto;
anyone can send those headers, so they are believed only from TRUSTED_PROXIES:

- from a trusted proxy, REMOTE_ADDR becomes the client's address: X-Forwarded-For read from the right,
  skipping further trusted proxies (a load balancer in front of nginx), up to the first other address;
- from anyone else, X-Forwarded-For is left unread and X-Forwarded-Proto is dropped, so a forged
  "https" cannot make a plain request look secure (SECURE_PROXY_SSL_HEADER).

The address the connection itself came from stays in request.META[PEER]: the client-certificate header
(enrollment/clientcert.py) is trusted by that address, never by a forwarded one.
"""
import functools
import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

PEER = "mdmportal.peer_addr"


def trusted_proxy(address):
    """Is `address` one of TRUSTED_PROXIES (addresses or networks)?"""
    return _trusted(address or "", tuple(settings.TRUSTED_PROXIES))


@functools.lru_cache(maxsize=256)
def _trusted(address, proxies):
    # Remembered per (address, setting): asked at every request (twice for a device's), and parsing
    # the networks cost more than the rest of the check.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in proxies:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            logger.error("TRUSTED_PROXIES entry %r is not an address or network", entry)
    return False


def client_address(peer, forwarded_for):
    """The client's address: from the right of X-Forwarded-For, past every trusted proxy."""
    address = peer
    for hop in reversed(forwarded_for.split(",")):
        if not trusted_proxy(address):
            break
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            logger.warning("X-Forwarded-For entry %r from proxy %s is not an address", hop[:64], address)
            break
        address = hop
    return address


def peer_address(request):
    """The address the connection came from (before any X-Forwarded-For was applied)."""
    return request.META.get(PEER) or request.META.get("REMOTE_ADDR", "")


class ForwardedHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        peer = request.META.get("REMOTE_ADDR", "")
        request.META[PEER] = peer
        if trusted_proxy(peer):
            forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded:
                request.META["REMOTE_ADDR"] = client_address(peer, forwarded[:2048])
        else:
            request.META.pop("HTTP_X_FORWARDED_PROTO", None)
        return self.get_response(request)
