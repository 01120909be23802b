"""XML attacks against every XML endpoint (hardening): external entities to a file and to
a URL, parameter entities, external DTDs, billion laughs, XInclude, a DOCTYPE hidden by UTF-16,
deep nesting, huge attributes, many namespaces, many elements and oversized bodies. Each is refused
(or answered) cleanly, nothing is fetched and no file content comes back.

The work each request does is bounded by counts, never by a clock (which a busy machine stretches):
the XML parses it causes (its body parsed at most once, no parse building more nodes than its input
has markup or more text than its input has bytes, as entity expansion would) and its database
queries (no more than the plain message costs)."""
import contextlib
import http.server
import threading
from dataclasses import dataclass

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from lxml import etree

from enrollment import soap
from tests import fuzzing
from tests import omadm_messages as sml
from tests.enrollment_soap import (
    CONTENT_TYPE, discover_body, get_policies_body, password_security, rst_body, service_url, windows_csr,
)
from tests.factories import PASSWORD
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

PASSWD = b"root:"
# Parses one request may cause: its body, and the provisioning document the enrollment service writes
# and reads back (enrollment/wstep.py, digest_material).
MAX_PARSES = 2


@dataclass
class Parse:
    """One lxml parse during a request: what went in and what the tree built from it holds."""

    data: bytes | str
    nodes: int  # elements, comments, processing instructions, entity references and attributes
    characters: int  # text, tails and attribute values

    @property
    def markup(self):
        """Nodes the input can describe without expansion: one per `<`, `&` or `=`."""
        marks = ("<", "&", "=") if isinstance(self.data, str) else (b"<", b"&", b"=")
        return sum(self.data.count(mark) for mark in marks)


def _built(root):
    nodes = characters = 0
    for node in root.iter():
        nodes += 1 + len(node.attrib) if isinstance(node.tag, str) else 1
        characters += len(node.text or "") + len(node.tail or "")
        characters += sum(len(value) for value in node.attrib.values()) if isinstance(node.tag, str) else 0
    return nodes, characters


@contextlib.contextmanager
def recording_parses():
    """Every lxml.etree.fromstring call inside the block (all the device endpoints parse with it), as Parses.
    A parse that fails builds nothing and is not recorded."""
    parses = []
    original = etree.fromstring

    def fromstring(data, *args, **kwargs):
        root = original(data, *args, **kwargs)
        parses.append(Parse(data, *_built(root)))
        return root

    etree.fromstring = fromstring
    try:
        yield parses
    finally:
        etree.fromstring = original


def assert_bounded(body, parses):
    """The XML work of one request is bounded by what it sent."""
    assert len(parses) <= MAX_PARSES, [len(p.data) for p in parses]
    assert sum(1 for p in parses if p.data == body) <= 1, "the body was parsed more than once"
    for p in parses:
        assert p.nodes <= p.markup, f"{p.nodes} nodes built from {p.markup} marks of markup"
        assert p.characters <= len(p.data), f"{p.characters} characters of text built from {len(p.data)} bytes"


@pytest.fixture(scope="module")
def trap():
    """A local HTTP server counting every request: an attack that makes us fetch anything shows here."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY leak "fetched">')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


class Endpoint:
    def __init__(self, name, url, body, marker, response_action=None, extra=None, content_type=CONTENT_TYPE):
        self.name, self.url, self.body, self.marker = name, url, body, marker
        self.response_action, self.extra, self.content_type = response_action, extra or {}, content_type

    def post(self, client, body):
        """The response, and the lxml parses (Parse) the request caused."""
        with recording_parses() as parses:
            response = client.post(self.url, body, content_type=self.content_type, secure=True, **self.extra)
        return response, parses

    def plain_queries(self, client):
        """The database queries the plain message costs, rolled back afterwards (its reply dropped), so the
        next request meets the same database."""
        with transaction.atomic():
            with CaptureQueriesContext(connection) as captured:
                client.post(self.url, self.body, content_type=self.content_type, secure=True, **self.extra)
            transaction.set_rollback(True)
        return len(captured)

    def outcome(self, response):
        """"refused" (SOAP MessageFormat fault / HTTP 400), "answered" (any other well-formed reply) or 413."""
        if self.response_action is None:
            code = fuzzing.check_syncml_reply(response)
            return "refused" if code == 400 else (413 if code == 413 else "answered")
        subcode = fuzzing.check_soap_reply(response, self.response_action)
        return "refused" if subcode == soap.Fault.MESSAGE_FORMAT else (413 if subcode == "413" else "answered")


@pytest.fixture(params=["discovery", "policy", "enrollment", "management"])
def endpoint(request, organisation, alice):
    create_ca_chain()
    if request.param == "discovery":
        return Endpoint("discovery", service_url(organisation, "discovery"), discover_body(), b"alice@example.com",
                        soap.DISCOVER_RESPONSE)
    if request.param == "policy":
        return Endpoint("policy", service_url(organisation, "policy"), get_policies_body(alice.email, PASSWORD),
                        b"alice@example.com", soap.GET_POLICIES_RESPONSE)
    if request.param == "enrollment":
        body = rst_body(password_security(alice.email, PASSWORD), windows_csr(rsa_key(1)))
        return Endpoint("enrollment", service_url(organisation, "enrollment"), body, b"PC-ALICE",
                        soap.REQUEST_TOKEN_RESPONSE)
    device, cert = certified_device(inventory_requested_at=timezone.now())
    return Endpoint("management", sml.URL, sml.package1(device.device_id), b"Surface Laptop 5", None,
                    {"HTTP_X_SSL_CLIENT_CERT": certificate_header(cert)}, sml.CONTENT_TYPE)


def with_doctype(body, doctype, marker, replacement):
    """The message with `doctype` before its root element and `replacement` in place of `marker`."""
    if body.startswith(b"<?xml"):
        declaration, rest = body.split(b"?>", 1)
        head = declaration + b"?>"
    else:
        head, rest = b"", body
    return head + doctype + rest.replace(marker, replacement, 1)


def attack(kind, body, marker, url):
    laughs = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10 if i else b"lol") for i in range(10))
    doctypes = {
        "xxe file": (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>', b"&x;"),
        "xxe url": (b'<!DOCTYPE r [<!ENTITY x SYSTEM "' + url.encode() + b'/entity">]>', b"&x;"),
        "parameter entity": (b'<!DOCTYPE r [<!ENTITY % p SYSTEM "' + url.encode() + b'/p.dtd"> %p;]>', b"&leak;"),
        "external dtd": (b'<!DOCTYPE r SYSTEM "' + url.encode() + b'/external.dtd">', b"&leak;"),
        "billion laughs": (b"<!DOCTYPE r [" + laughs + b"]>", b"&l9;"),
        "internal entity": (b'<!DOCTYPE r [<!ENTITY e "expanded">]>', b"&e;"),
    }
    if kind in doctypes:
        doctype, reference = doctypes[kind]
        return with_doctype(body, doctype, marker, reference)
    if kind == "xxe in utf-16":
        text = with_doctype(body, doctypes["xxe file"][0], marker, b"&x;").decode()
        if text.startswith("<?xml"):
            text = text.split("?>", 1)[1]
        return ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16")
    if kind == "xinclude":
        return body.replace(marker, b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" parse="text" '
                                    b'href="file:///etc/passwd"/>', 1)
    if kind == "deep nesting":
        return body.replace(marker, b"<a>" * 10_000 + b"</a>" * 10_000, 1)
    raise ValueError(kind)


REFUSED = ["xxe file", "xxe url", "parameter entity", "external dtd", "billion laughs", "internal entity",
           "xxe in utf-16", "deep nesting"]


@pytest.mark.parametrize("kind", REFUSED)
def test_entities_dtds_and_deep_nesting_are_refused_without_expanding_or_fetching(client, endpoint, trap, kind):
    url, hits = trap
    body = attack(kind, endpoint.body, endpoint.marker, url)
    response, parses = endpoint.post(client, body)

    assert endpoint.outcome(response) == "refused"
    assert_bounded(body, parses)
    assert hits == []
    assert PASSWD not in response.content and b"lollol" not in response.content
    assert b"expanded" not in response.content and b"fetched" not in response.content


def test_xinclude_is_never_processed(client, endpoint, trap):
    body = attack("xinclude", endpoint.body, endpoint.marker, trap[0])
    response, parses = endpoint.post(client, body)
    endpoint.outcome(response)
    assert_bounded(body, parses)
    assert PASSWD not in response.content


def _inside(body, marker, payload):
    return body.replace(marker, marker + payload, 1)


@pytest.mark.parametrize("kind", ["huge attribute", "many namespaces", "many elements", "long text"])
def test_big_but_legal_documents_are_answered_with_bounded_work(client, endpoint, kind):
    payload = {
        "huge attribute": b'<z a="' + b"A" * 1_500_000 + b'"/>',
        "many namespaces": b"<z " + b" ".join(b'xmlns:n%d="urn:n%d"' % (i, i) for i in range(40_000)) + b"/>",
        "many elements": b"<z/>" * 200_000,
        "long text": b"B" * 1_500_000,
    }[kind]
    body = _inside(endpoint.body, endpoint.marker, payload)
    plain = endpoint.plain_queries(client)
    with CaptureQueriesContext(connection) as queries:
        response, parses = endpoint.post(client, body)
    assert endpoint.outcome(response) in ("refused", "answered")
    assert_bounded(body, parses)
    assert len(queries) <= plain  # no query per element, attribute or byte
    assert b"A" * 1000 not in response.content and b"B" * 1000 not in response.content


def test_bodies_over_the_limit_are_413_before_parsing(client, endpoint, settings):
    body = _inside(endpoint.body, endpoint.marker, b"x" * settings.ENROLLMENT_MAX_BODY_BYTES)
    response, parses = endpoint.post(client, body)
    assert endpoint.outcome(response) == 413
    assert parses == []


def test_a_declared_length_over_the_limit_is_413_without_reading(client, endpoint, settings):
    response, _ = endpoint.post(client, endpoint.body)  # a normal request is answered
    assert response.status_code == 200
    extra = {**endpoint.extra, "CONTENT_LENGTH": str(settings.ENROLLMENT_MAX_BODY_BYTES + 1)}
    response = client.generic("POST", endpoint.url, endpoint.body, content_type=endpoint.content_type, secure=True,
                              **extra)
    assert response.status_code == 413


def test_the_locked_down_parsers_refuse_entities_even_without_the_byte_check():
    """Belt and braces: were the DOCTYPE byte check removed, the parsers still neither load nor expand."""
    from management import syncml

    document = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    for parser in (soap.PARSER, syncml.PARSER):
        root = etree.fromstring(document, parser)
        assert PASSWD not in etree.tostring(root)
