"""The SOAP side of an enrollment (MS-MDE2 2.2, 3.1, 3.3, 3.4; MS-XCEP; MS-WSTEP): the namespaces and
actions as a client declares them, the Discovery URL, and the answers to Discover, GetPolicies and
RequestSecurityToken read and checked field by field as Windows reads them."""
import base64
import binascii
import urllib.parse
import uuid
from dataclasses import dataclass

from lxml import etree
from lxml.builder import ElementMaker

from .errors import SimulatorError, SoapFaultError

# Namespaces and URIs (MS-MDE2 2.2.1, 3.4.4.1.1.1).
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA_NS = "http://www.w3.org/2005/08/addressing"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST_NS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
AC_NS = "http://schemas.xmlsoap.org/ws/2006/12/authorization"
DISCOVERY_NS = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"
XCEP_NS = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
ENROLLMENT_NS = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

DISCOVER_ACTION = f"{DISCOVERY_NS}/IDiscoveryService/Discover"
DISCOVER_RESPONSE_ACTION = f"{DISCOVERY_NS}/IDiscoveryService/DiscoverResponse"
GET_POLICIES_ACTION = f"{XCEP_NS}/IPolicy/GetPolicies"
GET_POLICIES_RESPONSE_ACTION = f"{XCEP_NS}/IPolicy/GetPoliciesResponse"
RST_ACTION = f"{ENROLLMENT_NS}/RST/wstep"
RSTRC_ACTION = f"{ENROLLMENT_NS}/RSTRC/wstep"

PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
USER_TOKEN = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentUserToken"
JWT_TOKEN = "urn:ietf:params:oauth:token-type:jwt"
PKCS10 = f"{ENROLLMENT_NS}#PKCS10"
BASE64_BINARY = f"{WSSE_NS}#base64binary"
TOKEN_TYPE = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken"
PROV_DOC = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc"
ISSUE = f"{WST_NS}/Issue"
RENEW = f"{WST_NS}/Renew"
PKCS7 = f"{ENROLLMENT_NS}#PKCS7"
ANONYMOUS = f"{WSA_NS}/anonymous"

DISCOVERY_PATH = "/EnrollmentServer/Discovery.svc"
REQUEST_VERSION = "5.0"
# MS-MDE2 3.1.4.1: OSEdition is the GetProductInfo SKU, 48 Pro, 136 Holographic for Business (HoloLens 2).
OSEDITION_PRO = "48"
OSEDITION_HOLOLENS = "136"
PC_VERSION = "10.0.22631.4317"
HOLOLENS_VERSION = "10.0.22621.1133"

# MS-XCEP: hash OIDs a policy may reference, and the name build_windows_csr takes.
HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "1.3.14.3.2.29": "sha1",  # szOID_OIWSEC_sha1RSASign, Microsoft's own sample
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

# Locked-down parser for everything the server sends (house style 7).
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

S = ElementMaker(namespace=SOAP12_NS, nsmap={"s": SOAP12_NS, "a": WSA_NS})
A = ElementMaker(namespace=WSA_NS)
WSSE = ElementMaker(namespace=WSSE_NS, nsmap={"wsse": WSSE_NS, "u": WSU_NS})


@dataclass
class Discovery:
    auth_policy: str
    enrollment_version: str
    policy_url: str
    enrollment_url: str
    authentication_url: str | None


@dataclass
class Policy:
    minimal_key_length: int
    hash_oid: str | None


def discovery_url(server):
    """The Discovery.svc URL Windows would use for what the user typed (MS-MDE2 3.1)."""
    server = server.strip()
    if "://" not in server:
        server = f"https://{server}"
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SimulatorError("server-url", f"{server!r} is not an https:// address or a host name")
    path = parts.path.rstrip("/")
    if not path:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, DISCOVERY_PATH, parts.query, ""))
    if path.lower().endswith("/discovery.svc"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    raise SimulatorError(
        "server-url", f"{server!r}: give a host, https://host, or the full URL ending in Discovery.svc"
    )


def new_message_id():
    return f"urn:uuid:{uuid.uuid4()}"


# --- reading SOAP answers -------------------------------------------------------------------------

def parse_xml(body, check):
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise SimulatorError(check, f"the answer is not well-formed XML ({exc})") from None
    if root.getroottree().docinfo.doctype:
        raise SimulatorError(check, "the answer carries a DOCTYPE, which a SOAP message must not")
    return root


def _text(element):
    return (element.text or "").strip() if element is not None else ""


def _fault(envelope, ns, check):
    body = envelope.find(f"{{{ns}}}Body")
    fault = body.find(f"{{{ns}}}Fault") if body is not None else None
    if fault is None:
        return
    if ns == SOAP11_NS:
        raise SoapFaultError(check, code=_text(fault.find("faultcode")), subcode=None,
                             reason=_text(fault.find("faultstring")))
    error_type = fault.find(f"{{{ns}}}Detail/{{{ENROLLMENT_NS}}}DeviceEnrollmentServiceError/{{{ENROLLMENT_NS}}}ErrorType")
    raise SoapFaultError(
        check,
        code=_text(fault.find(f"{{{ns}}}Code/{{{ns}}}Value")),
        subcode=_text(fault.find(f"{{{ns}}}Code/{{{ns}}}Subcode/{{{ns}}}Value")) or None,
        reason=_text(fault.find(f"{{{ns}}}Reason/{{{ns}}}Text")),
        error_type=_text(error_type) or None,
    )


def read_envelope(body, *, action, message_id, check):
    """The SOAP Body of a reply after the checks every reply must pass (MS-MDE2 2.2); faults raise.
    `body` is the raw answer or the envelope parse_xml already made of it."""
    envelope = parse_xml(body, check) if isinstance(body, bytes) else body
    ns = etree.QName(envelope).namespace
    if etree.QName(envelope).localname != "Envelope" or ns not in (SOAP12_NS, SOAP11_NS):
        raise SimulatorError(check, f"the answer is not a SOAP envelope but <{envelope.tag}>")
    _fault(envelope, ns, check)
    header = envelope.find(f"{{{ns}}}Header")
    if header is None:
        raise SimulatorError(f"{check}-header", "the answer has no SOAP Header")
    got_action = _text(header.find(f"{{{WSA_NS}}}Action"))
    if got_action != action:
        raise SimulatorError(f"{check}-action", f"a:Action is {got_action!r}, expected {action!r}")
    relates_to = _text(header.find(f"{{{WSA_NS}}}RelatesTo"))
    if relates_to != message_id:
        raise SimulatorError(f"{check}-relates-to", f"a:RelatesTo is {relates_to!r}, expected our MessageID {message_id!r}")
    body_element = envelope.find(f"{{{ns}}}Body")
    if body_element is None or len(body_element) == 0:
        raise SimulatorError(check, "the answer has an empty SOAP Body")
    return body_element


def _service_url(value, name, *, secure, check):
    if not value:
        raise SimulatorError(check, f"{name} is missing")
    parts = urllib.parse.urlsplit(value)
    allowed = ("https",) if secure else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise SimulatorError(check, f"{name} {value!r} is not an {'/'.join(allowed)} URL (Windows requires https)")
    return value


def parse_discover_response(body, message_id, *, secure=True, entra=False):
    """MS-MDE2 3.1.4.1: the DiscoverResponse, checked field by field. Entra clients skip the
    AuthenticationServiceUrl (they hold an Entra token already), so it is optional for them."""
    check = "discover"
    soap_body = read_envelope(body, action=DISCOVER_RESPONSE_ACTION, message_id=message_id, check=check)
    response = soap_body[0]
    if etree.QName(response).localname != "DiscoverResponse" or (etree.QName(response).namespace or "").rstrip("/") != DISCOVERY_NS:
        raise SimulatorError(check, f"the body holds <{response.tag}>, expected DiscoverResponse in {DISCOVERY_NS}")
    ns = etree.QName(response).namespace
    result = response.find(f"{{{ns}}}DiscoverResult")
    if result is None:
        raise SimulatorError(check, "DiscoverResult is missing")

    def value(name):
        return _text(result.find(f"{{{ns}}}{name}"))

    auth_policy = value("AuthPolicy")
    if auth_policy not in ("OnPremise", "Federated"):
        raise SimulatorError("discover-auth-policy", f"AuthPolicy {auth_policy!r} is not one we offered (OnPremise, Federated)")
    version = value("EnrollmentVersion")
    try:
        numeric = float(version)
    except ValueError:
        raise SimulatorError("discover-enrollment-version", f"EnrollmentVersion {version!r} is not a version number") from None
    if not 1.0 <= numeric <= float(REQUEST_VERSION):
        raise SimulatorError("discover-enrollment-version",
                             f"EnrollmentVersion {version} is outside 1.0..{REQUEST_VERSION}, the version we asked for")
    policy_url = _service_url(value("EnrollmentPolicyServiceUrl"), "EnrollmentPolicyServiceUrl", secure=secure, check="discover-policy-url")
    enrollment_url = _service_url(value("EnrollmentServiceUrl"), "EnrollmentServiceUrl", secure=secure, check="discover-enrollment-url")
    if urllib.parse.urlsplit(policy_url).netloc.lower() != urllib.parse.urlsplit(enrollment_url).netloc.lower():
        raise SimulatorError("discover-policy-url", f"the policy URL {policy_url} and the enrollment URL {enrollment_url} are on different hosts")
    auth_url = value("AuthenticationServiceUrl") or None
    if auth_policy == "Federated" and (auth_url or not entra):
        auth_url = _service_url(auth_url, "AuthenticationServiceUrl", secure=secure, check="discover-authentication-url")
    return Discovery(auth_policy, version, policy_url, enrollment_url, auth_url)


def parse_policies_response(body, message_id):
    """MS-XCEP, MS-MDE2 3.3: Windows reads minimalKeyLength and hashAlgorithmOIDReference (→ oIDs)."""
    check = "policies"
    soap_body = read_envelope(body, action=GET_POLICIES_RESPONSE_ACTION, message_id=message_id, check=check)
    response = soap_body.find(f"{{{XCEP_NS}}}GetPoliciesResponse")
    if response is None:
        raise SimulatorError(check, f"the body holds <{soap_body[0].tag}>, expected GetPoliciesResponse in {XCEP_NS}")
    attributes = response.find(f"{{{XCEP_NS}}}response/{{{XCEP_NS}}}policies/{{{XCEP_NS}}}policy/{{{XCEP_NS}}}attributes")
    if attributes is None:
        raise SimulatorError("policies-shape", "response/policies/policy/attributes is missing")
    length_text = _text(attributes.find(f"{{{XCEP_NS}}}privateKeyAttributes/{{{XCEP_NS}}}minimalKeyLength"))
    if not length_text.isdigit() or not 1024 <= int(length_text) <= 16384:
        raise SimulatorError("policies-key-length", f"minimalKeyLength {length_text!r} is not a key size between 1024 and 16384")
    reference = attributes.find(f"{{{XCEP_NS}}}hashAlgorithmOIDReference")
    hash_oid = None
    if reference is not None and reference.get(f"{{{XSI_NS}}}nil") != "true":
        ref = _text(reference)
        for oid in response.iterfind(f"{{{XCEP_NS}}}oIDs/{{{XCEP_NS}}}oID"):
            if _text(oid.find(f"{{{XCEP_NS}}}oIDReferenceID")) == ref:
                if _text(oid.find(f"{{{XCEP_NS}}}group")) != "1":
                    raise SimulatorError("policies-hash-oid", f"oID {ref} referenced as the hash algorithm is not in group 1 (hash)")
                hash_oid = _text(oid.find(f"{{{XCEP_NS}}}value"))
                break
        else:
            raise SimulatorError("policies-hash-oid", f"hashAlgorithmOIDReference {ref!r} names no oID in oIDs")
        if hash_oid not in HASH_OIDS:
            raise SimulatorError("policies-hash-oid", f"hash algorithm OID {hash_oid!r} is not one Windows knows")
    return Policy(int(length_text), hash_oid)


def _attribute(element, name):
    """ValueType/EncodingType come with or without the wsse: prefix (MS-MDE2 samples use it)."""
    return element.get(name) or element.get(f"{{{WSSE_NS}}}{name}")


def parse_enrollment_response(body, message_id, *, check="enroll"):
    """MS-MDE2 3.4: the RSTRC (of an enrollment, or of a renewal, MS-MDE2 3.5); returns the decoded provisioning
    document bytes."""
    soap_body = read_envelope(body, action=RSTRC_ACTION, message_id=message_id, check=check)
    rstr = soap_body.find(f"{{{WST_NS}}}RequestSecurityTokenResponseCollection/{{{WST_NS}}}RequestSecurityTokenResponse")
    if rstr is None:
        raise SimulatorError(check, "RequestSecurityTokenResponseCollection/RequestSecurityTokenResponse is missing")
    token_type = _text(rstr.find(f"{{{WST_NS}}}TokenType"))
    if token_type != TOKEN_TYPE:
        raise SimulatorError("enroll-token-type", f"TokenType is {token_type!r}, expected {TOKEN_TYPE}")
    token = rstr.find(f"{{{WST_NS}}}RequestedSecurityToken/{{{WSSE_NS}}}BinarySecurityToken")
    if token is None:
        raise SimulatorError("enroll-token", "RequestedSecurityToken/BinarySecurityToken is missing")
    if _attribute(token, "ValueType") != PROV_DOC:
        raise SimulatorError("enroll-token", f"BinarySecurityToken ValueType is {_attribute(token, 'ValueType')!r}, expected {PROV_DOC}")
    encoding = _attribute(token, "EncodingType")
    if encoding not in (None, BASE64_BINARY):
        raise SimulatorError("enroll-token", f"BinarySecurityToken EncodingType is {encoding!r}, expected {BASE64_BINARY}")
    try:
        return base64.b64decode("".join((token.text or "").split()), validate=True)
    except binascii.Error:
        raise SimulatorError("enroll-token", "the provisioning document is not valid base64") from None
