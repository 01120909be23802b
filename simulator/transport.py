"""HTTP as the device sends it: urllib openers that refuse redirects where Windows does not follow
them, curl-style --resolve (the URL's host name kept for the Host header, SNI and the certificate
check), the TLS context, the X-SSL-Client-Cert header nginx would forward, and the readable text of an
error page for the report."""
import functools
import hashlib
import http.client
import socket
import ssl
import threading
import urllib.parse
import urllib.request

import lxml.html
from cryptography.hazmat.primitives import serialization
from lxml import etree

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
CLIENT_CERT_HEADER = "X-SSL-Client-Cert"


def client_certificate_header(certificate):
    """The X-SSL-Client-Cert value nginx forwards after verifying a TLS client certificate
    ($ssl_client_escaped_cert: the URL-escaped PEM)."""
    return urllib.parse.quote(certificate.public_bytes(serialization.Encoding.PEM).decode())


def _page_text(html):
    """The readable text of an error page, for the report."""
    try:
        document = lxml.html.document_fromstring(html) if html.strip() else None
    except (etree.ParserError, ValueError):
        document = None
    if document is None:
        text = html.decode("utf-8", "replace")
    else:
        for element in document.xpath("//style | //script | //title"):
            element.drop_tree()
        text = " ".join(document.itertext())
    return " ".join(text.split())[:300] or "(empty body)"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect on the enrollment endpoints breaks Windows (it does not follow them); report it instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def parse_resolve(value):
    """curl's --resolve HOST:PORT:ADDRESS (ADDRESS may be a bracketed IPv6 address) as
    ((host, port), address); ValueError when it is not of that shape."""
    host, sep, rest = value.partition(":")
    port, sep2, address = rest.partition(":")
    if not (host and sep and sep2 and port.isdigit() and address):
        raise ValueError(f"{value!r} is not HOST:PORT:ADDRESS")
    return (host.lower(), int(port)), address.strip("[]")


def _resolving(connection_class, resolve):
    """`connection_class` connecting to the address `resolve` maps (host, port) to, like curl's
    --resolve: the URL's host name still goes into the Host header, the TLS SNI and the certificate
    check, so a test server can be reached under its production name without touching DNS."""

    class Resolving(connection_class):
        def __init__(self, host, *args, **kwargs):
            super().__init__(host, *args, **kwargs)
            address = resolve.get((self.host.lower(), self.port))
            if address is not None:
                self._create_connection = lambda target, *a, **kw: socket.create_connection((address, target[1]), *a, **kw)

    return Resolving


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, resolve):
        super().__init__()
        self._connection = _resolving(http.client.HTTPConnection, resolve)

    def http_open(self, req):
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context, resolve):
        super().__init__(context=context)
        self._connection = functools.partial(_resolving(http.client.HTTPSConnection, resolve), context=context)

    def https_open(self, req):
        return self.do_open(self._connection, req)


def build_opener(context, resolve, *handlers):
    """A urllib opener whose connections follow `resolve` ({(host, port): address}, see --resolve)."""
    return urllib.request.build_opener(_HTTPHandler(resolve), _HTTPSHandler(context, resolve), *handlers)


def soap_opener(context, resolve):
    """The opener of a device's SOAP requests (build_opener refusing redirects) for a shared `context`
    (shared_ssl_context) and `resolve`: made once per process for the same pair, as it holds nothing
    of a device (no cookies, no client certificate; every request opens its own connection), and
    urllib's build_opener costs about a third of the Python function calls of an enrollment's client
    side (every handler's methods listed, the environment scanned for proxies)."""
    return _soap_opener(context, frozenset(resolve.items()))


@functools.lru_cache(maxsize=64)
def _soap_opener(context, resolve):
    return build_opener(context, dict(resolve), _RefuseRedirects())


def _ssl_context(verify_tls, ca_file):
    """A new TLS context trusting the system's store or `ca_file` (verifying nothing without `verify_tls`),
    for a context that gets more loaded into it (a client certificate)."""
    if not verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


_shared_contexts = {}
_shared_contexts_lock = threading.Lock()


def shared_ssl_context(verify_tls, ca_file):
    """The TLS context of connections without a client certificate: what _ssl_context makes, made once
    per process for the same `verify_tls`, `ca_file` name and bytes of that file, and then shared by
    every simulated device, as the devices of one machine share its trust store. Loading the system's
    store costs more CPU than the rest of an enrollment's client side; an SSLContext that nothing is
    loaded into afterwards may serve connections from any thread."""
    content = None
    if verify_tls and ca_file is not None:
        with open(ca_file, "rb") as trusted:
            content = hashlib.sha256(trusted.read()).digest()
    key = (bool(verify_tls), ca_file, content)
    with _shared_contexts_lock:
        context = _shared_contexts.get(key)
        if context is None:
            if len(_shared_contexts) >= 16:  # CA files rewritten again and again: keep the memory bounded
                _shared_contexts.clear()
            context = _shared_contexts[key] = _ssl_context(verify_tls, ca_file)
    return context
