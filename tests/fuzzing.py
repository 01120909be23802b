"""Hypothesis profiles and strategies for the hardening tests: bodies built by mutating the
real device messages of tests/fixtures/ (tree edits, then byte edits), plus element soup and plain
random bytes, and the checks every reply must pass.

Two levels, one set of tests: the "hardening" profile (the default) runs a modest number of examples
inside `./test`; `HYPOTHESIS_PROFILE=fuzz ./test -m fuzz` runs the fuzz-marked tests with
FUZZ_EXAMPLES (10,000 by default) generated bodies per endpoint.
"""
import copy
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from lxml import etree

from enrollment import soap
from management import syncml

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
_COMMON = {
    # The test client's timings vary with the machine's load; only a hang matters (see the attack tests).
    "deadline": None,
    "database": None,
    "print_blob": True,
    # Fixtures are set up once per test on purpose: each example is one more request to the same server.
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("hardening", max_examples=60, **_COMMON)
settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hardening"))

# How many bodies each endpoint test posted in this process (printed by the fuzz target).
POSTED = Counter()

NAMESPACES = [
    None, "", soap.SOAP_NS, soap.SOAP11_NS, soap.WSA_NS, soap.WSSE_NS, soap.WSU_NS, soap.WST_NS, soap.AC_NS,
    soap.DISCOVERY_NS, soap.DISCOVERY_NS + "/", soap.XCEP_NS, soap.ENROLLMENT_NS, soap.XSI_NS,
    syncml.NS_12, syncml.NS_11, syncml.METINF, "urn:x", "http://evil.example/ns", "file:///etc/passwd",
]
LOCAL_NAMES = [
    "Envelope", "Header", "Body", "Action", "MessageID", "Security", "UsernameToken", "Username", "Password",
    "BinarySecurityToken", "Discover", "request", "RequestVersion", "AuthPolicies", "AuthPolicy", "EmailAddress",
    "GetPolicies", "RequestSecurityToken", "TokenType", "RequestType", "AdditionalContext", "ContextItem", "Value",
    "SyncML", "SyncHdr", "SyncBody", "SessionID", "MsgID", "Source", "Target", "LocURI", "Cred", "Meta", "Data",
    "Alert", "Replace", "Status", "Results", "Atomic", "Sequence", "CmdID", "MsgRef", "CmdRef", "Cmd", "Item",
    "Final", "Format", "Type", "NextNonce",
]
NASTY_TEXT = [
    "", " ", "0", "-1", "1", "4.0", "5.0", "99999999999999999999999", "1e309", "NaN", "Infinity", "-0", "0x10",
    "OnPremise", "Federated", "Certificate", "Full", "Device", "alice@example.com", "ALICE@EXAMPLE.COM",
    "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue", "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew",
    "1201", "1222", "1223", "1224", "1226", "200", "401", "2147483648", "\u202eevil", "<script>alert(1)</script>",
    "'\"><svg onload=alert(1)>", "%00", "../../etc/passwd", "A" * 300, "9" * 80, "=" * 7, "!!!!", "ÿ", "\u00a0",
]
NASTY_BYTES = [
    b"<!DOCTYPE x>", b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", b"<!ENTITY", b"&e;", b"&amp;",
    b"&#0;", b"&#x10FFFF;", b"&#xD800;", b"]]>", b"<![CDATA[", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc0\x80",
    b"<?xml version='1.0' encoding='utf-16'?>", b"<?xml version='1.1'?>", b"<?pi x?>", b"<!--", b"-->", b"<a:",
    b"xmlns='urn:x'", b"xmlns:s='urn:x'", b"\r\n", b"\t", b"<", b">", b"'", b'"', b"\x80",
]


# Strategies are built once: building them inside every draw costs more than the request itself.
XML_TEXT = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
XML_NAME = st.one_of(st.sampled_from(LOCAL_NAMES), st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True))
QUALIFIED_NAME = st.builds(lambda ns, local: f"{{{ns}}}{local}" if ns else local, st.sampled_from(NAMESPACES), XML_NAME)
TREE_EDITS = st.sampled_from(["drop", "duplicate", "text", "attribute", "child", "rename", "nest", "repeat", "tail",
                              "clear"])
BYTE_EDITS = st.sampled_from(["truncate", "flip", "insert", "delete", "splice"])
PREFIXES = st.sampled_from([None, "s", "a", "x", "wsse"])
CHILD_NAMESPACES = st.sampled_from(NAMESPACES[2:])
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "iso-8859-1", "ascii"])
NASTY_SPLICES = st.sampled_from(NASTY_BYTES)


def xml_text():
    return XML_TEXT


def xml_name():
    return XML_NAME


def _quietly(edit):
    """lxml refuses some names and characters with ValueError/TypeError: that edit is skipped."""
    try:
        edit()
    except (ValueError, TypeError):
        pass


@st.composite
def tree_edit(draw, root):
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    target = elements[draw(st.integers(0, len(elements) - 1))]
    parent = target.getparent()
    kind = draw(TREE_EDITS)
    if kind == "drop" and parent is not None:
        parent.remove(target)
    elif kind == "duplicate" and parent is not None:
        parent.insert(parent.index(target), copy.deepcopy(target))
    elif kind == "text":
        value = draw(XML_TEXT)
        _quietly(lambda: setattr(target, "text", value))
    elif kind == "attribute":
        name, value = draw(QUALIFIED_NAME), draw(XML_TEXT)
        _quietly(lambda: target.set(name, value))
    elif kind == "child":
        name, value = draw(QUALIFIED_NAME), draw(XML_TEXT)
        prefix, namespace = draw(PREFIXES), draw(CHILD_NAMESPACES)

        def add():
            child = etree.SubElement(target, name, nsmap={prefix: namespace})
            child.text = value
        _quietly(add)
    elif kind == "rename":
        name = draw(QUALIFIED_NAME)
        _quietly(lambda: setattr(target, "tag", name))
    elif kind == "nest":
        depth = draw(st.integers(1, 60))
        inner = target
        for _ in range(depth):
            inner = etree.SubElement(inner, target.tag)
    elif kind == "repeat" and parent is not None:
        for _ in range(draw(st.integers(2, 40))):
            parent.append(copy.deepcopy(target))
    elif kind == "tail":
        value = draw(XML_TEXT)
        _quietly(lambda: setattr(target, "tail", value))
    elif kind == "clear":
        target.clear()


@st.composite
def byte_edit(draw, data):
    if not data:
        return draw(st.binary(max_size=64))
    position = draw(st.integers(0, len(data)))
    kind = draw(BYTE_EDITS)
    if kind == "truncate":
        return data[:position]
    if kind == "flip" and position < len(data):
        return data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1:]
    if kind == "insert":
        return data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:]
    if kind == "delete":
        return data[:position] + data[position + draw(st.integers(1, 64)):]
    return data[:position] + draw(NASTY_SPLICES) + data[position:]


@st.composite
def mutated_xml(draw, seeds, *, max_tree_edits=4, max_byte_edits=3):
    """A real message (one of `seeds`), edited as a tree, serialised in some encoding, then edited as bytes."""
    root = etree.fromstring(seeds[draw(st.integers(0, len(seeds) - 1))])
    for _ in range(draw(st.integers(0, max_tree_edits))):
        draw(tree_edit(root))
    encoding = draw(ENCODINGS)
    data = etree.tostring(root, encoding=encoding, xml_declaration=draw(st.booleans()))
    for _ in range(draw(st.integers(0, max_byte_edits))):
        data = draw(byte_edit(data))
    return data


@st.composite
def element_soup(draw):
    """Random well-formed documents: random names, namespaces, attributes and nesting."""
    root = etree.Element(draw(QUALIFIED_NAME))
    elements = [root]
    for _ in range(draw(st.integers(0, 12))):
        parent = elements[draw(st.integers(0, len(elements) - 1))]
        name, value = draw(QUALIFIED_NAME), draw(XML_TEXT)
        child = etree.SubElement(parent, name)
        _quietly(lambda: setattr(child, "text", value))
        if draw(st.booleans()):
            attribute, attribute_value = draw(QUALIFIED_NAME), draw(XML_TEXT)
            _quietly(lambda: child.set(attribute, attribute_value))
        elements.append(child)
    return etree.tostring(root)


def bodies(seeds):
    """What a fuzzed endpoint receives: mostly mutated real messages, some soup, some raw bytes."""
    return st.one_of(
        mutated_xml(seeds), mutated_xml(seeds), mutated_xml(seeds), mutated_xml(seeds, max_tree_edits=0),
        element_soup(), st.binary(max_size=512),
    )


# --- what every reply must look like -------------------------------------------------------------------

SOAP_NSMAP = {"s": soap.SOAP_NS, "a": soap.WSA_NS, "e": soap.ENROLLMENT_NS}


def check_soap_reply(response, response_action):
    """A SOAP 1.2 envelope answering `response_action`, its Content-Length exact; a fault has the
    shape of MS-MDE2 2.2.10 (Receiver code, one of our subcodes, a reason, a TraceId). Returns the
    fault subcode, or None for a successful answer. A 413 is the one non-SOAP answer allowed."""
    if response.status_code == 413:
        return "413"
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response["Content-Type"] == soap.CONTENT_TYPE
    assert int(response["Content-Length"]) == len(response.content)
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{soap.SOAP_NS}}}Envelope"
    assert root.findtext("s:Header/a:Action", namespaces=SOAP_NSMAP) == response_action
    fault = root.find("s:Body/s:Fault", SOAP_NSMAP)
    if fault is None:
        assert len(root.find("s:Body", SOAP_NSMAP)) == 1
        return None
    assert fault.findtext("s:Code/s:Value", namespaces=SOAP_NSMAP) == "s:Receiver"
    subcode = fault.findtext("s:Code/s:Subcode/s:Value", namespaces=SOAP_NSMAP)
    assert subcode in {value for name, value in vars(soap.Fault).items() if name.isupper()}, subcode
    assert fault.findtext("s:Reason/s:Text", namespaces=SOAP_NSMAP)
    assert fault.findtext("s:Detail/e:DeviceEnrollmentServiceError/e:TraceId", namespaces=SOAP_NSMAP)
    return subcode


def check_syncml_reply(response):
    """Either a plain-text refusal with an HTTP error code, or a SyncML 1.2 message our own parser
    reads back, whose first Status answers the SyncHdr."""
    if response.status_code != 200:
        assert response.status_code in (400, 401, 403, 413, 415, 429), response.status_code
        assert response["Content-Type"].startswith("text/plain")
        return response.status_code
    assert response["Content-Type"] == syncml.CONTENT_TYPE
    assert int(response["Content-Length"]) == len(response.content)
    reply = syncml.parse(response.content)
    first = reply.commands[0]
    assert (first.name, first.cmd_ref, first.cmd) == ("Status", "0", "SyncHdr")
    return int(first.data)
