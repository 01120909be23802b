"""Requests this server sends to other servers (Microsoft Graph and its token endpoint, an Entra ID
JWKS mirror), all through `fetch`, which bounds what a hostile or broken server can make us do:

- Redirects. urllib follows 301/302/303/307/308 on its own and copies every request header to the
  new address, Authorization included; RFC 9110 §15.4 leaves it to the client whether to follow, and
  a bearer token must only go where it is meant to (RFC 6750 §5.3). The caller says which new
  addresses are acceptable (`may_follow`, by default the same origin: scheme, host and port); any
  other raises `RedirectRefused` before a byte is sent there.
- Size. At most `max_bytes` of an answer are read: a longer one (declared in Content-Length or not)
  raises `TooLarge` after reading at most max_bytes + 1 bytes.
- Time. `timeout` bounds each network wait (connecting, each read), and the whole body must have
  arrived within `timeout` more after the answer began (`TooSlow`), so a server that trickles one
  byte per wait cannot hold a worker.

Error statuses (4xx, 5xx) are answers like any other: (status, headers, body) with the same limits.
Network failures are left as urllib raises them (URLError, OSError, http.client.HTTPException).
"""
import ipaddress
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_PORTS = {"http": 80, "https": 443}
READ_PIECE = 64 * 1024


class OutboundError(Exception):
    """A request stopped here, not by the other server."""


class RedirectRefused(OutboundError):
    def __init__(self, url, location):
        self.url, self.location = url, location
        super().__init__(f"{netloc(url)} redirected to {location}; not followed.")


class TooLarge(OutboundError):
    def __init__(self, url, max_bytes):
        self.url, self.max_bytes = url, max_bytes
        super().__init__(f"The answer from {netloc(url)} is larger than {size_text(max_bytes)}; not read.")


class TooSlow(OutboundError):
    def __init__(self, url, seconds):
        self.url, self.seconds = url, seconds
        super().__init__(f"The answer from {netloc(url)} took longer than {seconds} s to arrive.")


def netloc(url):
    return urllib.parse.urlsplit(url).netloc


def size_text(count):
    return f"{count // (1024 * 1024)} MB" if count >= 1024 * 1024 and not count % (1024 * 1024) else f"{count // 1024} KB"


def origin(url):
    """(scheme, host, port) of an absolute URL, with the scheme's default port filled in (RFC 6454)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def same_origin(url, location):
    return origin(url) == origin(location)


def is_loopback(host):
    """127.0.0.0/8, ::1 or the name localhost: this machine."""
    host = (host or "").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_https(url, *, allow_loopback_http=False):
    """Whether `url` is an https URL with a host, or, when allowed, plain http to this machine."""
    parts = urllib.parse.urlsplit(url or "")
    if not parts.hostname:
        return False
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and allow_loopback_http and is_loopback(parts.hostname))


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, may_follow):
        self.may_follow = may_follow

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not self.may_follow(req.full_url, newurl):
            fp.close()
            raise RedirectRefused(req.full_url, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(request, *, timeout, max_bytes, may_follow=same_origin, clock=time.monotonic):
    """Send the urllib `request`: (status, headers, body bytes) of the final answer. Raises
    RedirectRefused, TooLarge, TooSlow, or what urllib raises for network failures."""
    opener = urllib.request.build_opener(_RedirectHandler(may_follow))
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    status = getattr(response, "status", None) or response.code
    if getattr(response, "fp", True) is None:  # an HTTPError made without the answer's body
        return status, response.headers, b""
    with response:
        body = read_capped(response, max_bytes, url=request.full_url, seconds=timeout, clock=clock)
    return status, response.headers, body


def read_capped(response, max_bytes, *, url, seconds, clock=time.monotonic):
    """The body of `response`, read piece by piece: at most max_bytes + 1 bytes ever, and all of it
    within `seconds` of now."""
    deadline = clock() + seconds
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(url, max_bytes)
    read = getattr(response, "read1", None) or response.read
    pieces, size = [], 0
    while size <= max_bytes:
        piece = read(min(READ_PIECE, max_bytes + 1 - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
        if clock() > deadline:
            raise TooSlow(url, seconds)
    if size > max_bytes:
        raise TooLarge(url, max_bytes)
    return b"".join(pieces)
