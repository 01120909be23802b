"""A Windows enrollment client that speaks the real HTTP protocol, for smoke tests and benchmarks.

It does what a Windows 10/11 PC or a HoloLens 2 does when the user types an email and a server
address in Settings > Accounts > Access work or school: the discovery probe and Discover (MS-MDE2 3.1),
the federated sign-in (MS-MDE2 3.2) or the on-premise UsernameToken, GetPolicies (MS-MDE2 3.3, MS-XCEP),
and the RequestSecurityToken with a Windows-shaped CSR (MS-MDE2 3.4, MS-WSTEP), then checks every
answer as strictly as Windows would, down to the provisioning document (MS-MDE2 2.2.9.1). Afterwards it
can renew its certificate as Windows' ROBO renewal does (MS-MDE2 3.5) and check in over OMA-DM (MS-MDM).

With an Entra ID token ("Microsoft Entra integration with MDM") it plays an Entra-joined PC or a work
account instead: optionally the terms-of-use page (Bearer token in, OpaqueBlob out, sent back as the
EnrollmentData item), then GetPolicies and RST carrying the token as a JWT BinarySecurityToken.

The protocol constants are spelled out here rather than imported from the server code on purpose:
a client that shared the server's literals could not catch a typo in them.
"""
import base64
import binascii
import functools
import hashlib
import http.client
import http.cookiejar
import json
import os
import secrets
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import lxml.html
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree
from lxml.builder import ElementMaker

from enrollment.csr import build_windows_csr

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

# The value Windows' web-auth broker passes as appru (MS-MDE2 3.2: an ms-app:// id).
APPRU = "ms-app://windows.immersivecontrolpanel"
# Where Windows waits for the terms-of-use answer, and the web view's host header (Entra integration with MDM).
TERMS_REDIRECT_URI = "ms-aadj-redir://auth/mdm"
# What the EnrollmentData context item of an Entra RST may carry (see Simulator).
ENROLLMENT_DATA_CHOICES = ("blob", "null", "empty", "absent")
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
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

# Locked-down parser for everything the server sends (house style 7).
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

S = ElementMaker(namespace=SOAP12_NS, nsmap={"s": SOAP12_NS, "a": WSA_NS})
A = ElementMaker(namespace=WSA_NS)
WSSE = ElementMaker(namespace=WSSE_NS, nsmap={"wsse": WSSE_NS, "u": WSU_NS})


class SimulatorError(Exception):
    """A step failed or an answer broke the protocol. `check` names the failed check."""

    def __init__(self, check, message):
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


class SoapFaultError(SimulatorError):
    """The server answered with a SOAP fault (MS-MDE2 2.2.10)."""

    def __init__(self, check, *, code, subcode, reason, error_type=None):
        detail = f" ({error_type})" if error_type else ""
        super().__init__(check, f"SOAP fault {subcode or code}{detail}: {reason}")
        self.code, self.subcode, self.reason, self.error_type = code, subcode, reason, error_type


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


@dataclass
class RenewalSchedule:
    """CertificateStore/My/WSTEP/Renew of the provisioning document (CertificateStore CSP)."""

    robo_support: bool
    renew_period: int  # days before expiry
    retry_interval: int  # days


@dataclass
class Provisioning:
    root: x509.Certificate
    issuing: x509.Certificate
    certificate: x509.Certificate
    store_location: str
    provider_id: str
    management_url: str
    renewal: RenewalSchedule | None = None


@dataclass
class RenewalResult:
    previous: x509.Certificate
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    enrollment: "EnrollmentResult"  # the enrollment as it stands now: new certificate and key
    seconds: float

    def as_dict(self):
        return {
            "ok": True,
            "previous_serial": format(self.previous.serial_number, "X"),
            "serial": format(self.certificate.serial_number, "X"),
            "thumbprint": thumbprint(self.certificate),
            "subject": self.certificate.subject.rfc4514_string(),
            "not_after": self.certificate.not_valid_after_utc.isoformat(),
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class EnrollmentResult:
    discovery_url: str
    device_id: str
    hw_dev_id: str
    device_name: str
    os_edition: str
    enrollment_type: str
    discovery: Discovery
    policy: Policy
    provisioning: Provisioning
    private_key: rsa.RSAPrivateKey
    provisioning_document: etree._ElementTree
    responses: dict
    steps: list = field(default_factory=list)

    @property
    def certificate(self):
        return self.provisioning.certificate

    @property
    def kind(self):
        return "HoloLens 2" if self.os_edition == OSEDITION_HOLOLENS else "Windows PC"

    @property
    def total_seconds(self):
        return sum(step.seconds for step in self.steps)

    def as_dict(self):
        cert = self.certificate
        return {
            "ok": True,
            "discovery_url": self.discovery_url,
            "auth_policy": self.discovery.auth_policy,
            "enrollment_version": self.discovery.enrollment_version,
            "enrollment_type": self.enrollment_type,
            "device_id": self.device_id,
            "hw_dev_id": self.hw_dev_id,
            "device_name": self.device_name,
            "kind": self.kind,
            "os_edition": self.os_edition,
            "certificate": {
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format(cert.serial_number, "X"),
                "thumbprint": thumbprint(cert),
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
            },
            "enrollment_url": self.discovery.enrollment_url,
            "management_url": self.provisioning.management_url,
            "provider_id": self.provisioning.provider_id,
            "steps": [{"name": s.name, "seconds": round(s.seconds, 4), "detail": s.detail} for s in self.steps],
            "total_seconds": round(self.total_seconds, 4),
        }


def thumbprint(cert):
    """Uppercase hex SHA-1 of the DER certificate: what Windows calls a thumbprint."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


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


# --- the provisioning document (MS-MDE2 2.2.9.1) --------------------------------------------------

def _characteristics(element, type_=None):
    return [c for c in element if c.tag == "characteristic" and (type_ is None or c.get("type") == type_)]


def _parms(element):
    return {p.get("name"): p.get("value") for p in element if p.tag == "parm"}


def _load_certificate(characteristic, where):
    value = _parms(characteristic).get("EncodedCertificate")
    if not value:
        raise SimulatorError("provisioning-certificate", f"{where}: EncodedCertificate is missing")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SimulatorError("provisioning-certificate", f"{where}: EncodedCertificate is not a DER certificate ({exc})") from None
    name = characteristic.get("type") or ""
    if name.upper() != thumbprint(cert):
        raise SimulatorError("provisioning-thumbprint", f"{where}: characteristic {name!r} does not match the certificate's thumbprint {thumbprint(cert)}")
    return cert


def _certificate_entries(root):
    """(store, location, certificate, location element) in document order over every CertificateStore."""
    entries = []
    for block in _characteristics(root, "CertificateStore"):
        for store in _characteristics(block):
            kind = store.get("type")
            if kind not in ("Root", "CA", "My"):
                raise SimulatorError("provisioning-certificate-store", f"unexpected certificate store {kind!r}")
            for location in _characteristics(store):
                if kind == "My" and location.get("type") == "WSTEP":
                    continue  # the renewal schedule, read by _renewal_schedule
                where = f"{kind}/{location.get('type')}"
                certs = [c for c in _characteristics(location) if c.get("type") != "PrivateKeyContainer"]
                if len(certs) != 1:
                    raise SimulatorError("provisioning-certificate-store", f"{where} holds {len(certs)} certificates, expected one")
                entries.append((kind, location.get("type"), _load_certificate(certs[0], where), location))
    return entries


def _verify_issued(cert, issuer, what):
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SimulatorError("provisioning-chain", f"{what}: {exc or 'signature does not verify'}") from None


def _is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_client_certificate(cert, *, public_key, subject, now=None):
    ours = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise SimulatorError("provisioning-client-key", "the client certificate does not carry the key of our CSR")
    common_names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [subject]:
        raise SimulatorError("provisioning-client-subject", f"the client certificate's CN is {common_names}, expected {subject}")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = []
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise SimulatorError("provisioning-client-eku", "the client certificate lacks the clientAuth EKU (1.3.6.1.5.5.7.3.2)")
    if _is_ca(cert):
        raise SimulatorError("provisioning-client-ca", "the client certificate says CA=true")
    now = now or datetime.now(timezone.utc)  # the device's clock, which may be off (Simulator.now)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise SimulatorError("provisioning-client-validity",
                             f"the client certificate is valid {cert.not_valid_before_utc} .. {cert.not_valid_after_utc}, not now")


def _check_application(root, *, device_enrollment):
    applications = _characteristics(root, "APPLICATION")
    if len(applications) != 1:
        raise SimulatorError("provisioning-application", f"{len(applications)} APPLICATION characteristics, expected one")
    application = applications[0]
    parms = _parms(application)
    if parms.get("APPID") != "w7":
        raise SimulatorError("provisioning-application", f"APPID is {parms.get('APPID')!r}, expected 'w7'")
    provider_id = parms.get("PROVIDER-ID")
    if not provider_id:
        raise SimulatorError("provisioning-provider-id", "APPLICATION has no PROVIDER-ID")
    address = parms.get("ADDR") or ""
    if urllib.parse.urlsplit(address).scheme not in ("https", "http") or not urllib.parse.urlsplit(address).hostname:
        raise SimulatorError("provisioning-addr", f"ADDR {address!r} is not a management server URL")
    criteria = parms.get("SSLCLIENTCERTSEARCHCRITERIA")
    store = "My%5CSystem" if device_enrollment else "My%5CUser"
    if criteria is not None and f"Stores={store}" not in criteria:
        raise SimulatorError("provisioning-cert-search", f"SSLCLIENTCERTSEARCHCRITERIA {criteria!r} does not name Stores={store}")
    blocks = {}
    for auth in _characteristics(application, "APPAUTH"):
        auth_parms = _parms(auth)
        blocks[auth_parms.get("AAUTHLEVEL")] = auth_parms
    for level, types in (("CLIENT", ("DIGEST",)), ("APPSRV", ("BASIC", "DIGEST"))):
        auth_parms = blocks.get(level)
        if auth_parms is None:
            raise SimulatorError("provisioning-appauth", f"the APPAUTH block with AAUTHLEVEL {level} is missing")
        if auth_parms.get("AAUTHTYPE") not in types:
            raise SimulatorError("provisioning-appauth", f"APPAUTH {level} has AAUTHTYPE {auth_parms.get('AAUTHTYPE')!r}, expected {' or '.join(types)}")
        if not auth_parms.get("AAUTHSECRET"):
            raise SimulatorError("provisioning-appauth", f"APPAUTH {level} has no AAUTHSECRET")
        # Windows 11 26200 refused the document without these nonces.
        try:
            nonce = base64.b64decode(auth_parms.get("AAUTHDATA") or "", validate=True)
        except binascii.Error:
            nonce = b""
        if not nonce:
            raise SimulatorError("provisioning-appauth", f"APPAUTH {level} has no base64 AAUTHDATA nonce")
    return provider_id, address


def _check_dmclient(root, provider_id):
    clients = _characteristics(root, "DMClient")
    if len(clients) != 1:
        raise SimulatorError("provisioning-dmclient", f"{len(clients)} DMClient characteristics, expected one")
    providers = [p for provider in _characteristics(clients[0], "Provider") for p in _characteristics(provider)]
    names = [p.get("type") for p in providers]
    if names != [provider_id]:
        raise SimulatorError("provisioning-provider-id", f"DMClient providers are {names}, expected exactly PROVIDER-ID {provider_id!r}")
    polls = _characteristics(providers[0], "Poll")
    if len(polls) != 1:
        raise SimulatorError("provisioning-poll", "DMClient provider has no Poll schedule")
    poll = _parms(polls[0])
    intervals = {k: v for k, v in poll.items() if k.startswith("Interval")}
    if not intervals or not all((v or "").isdigit() and int(v) > 0 for v in intervals.values()):
        raise SimulatorError("provisioning-poll", f"the Poll intervals {intervals} are not positive minutes")
    # An endless 1-minute poll made Fleet's devices re-apply CSPs in a storm.
    if poll.get("NumberOfRemainingScheduledRetries") == "0" and int(poll.get("IntervalForRemainingScheduledRetries") or "0") <= 1:
        raise SimulatorError("provisioning-poll", "the endless poll interval is 1 minute or less")


def _renewal_schedule(root):
    """My/WSTEP/Renew, checked as the CertificateStore CSP constrains it (both 1-1000 days,
    RetryInterval <= RenewPeriod), or None when the server does not offer renewal."""
    blocks = [renew for block in _characteristics(root, "CertificateStore") for my in _characteristics(block, "My")
              for wstep in _characteristics(my, "WSTEP") for renew in _characteristics(wstep, "Renew")]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise SimulatorError("provisioning-renewal", f"{len(blocks)} My/WSTEP/Renew blocks, expected one")
    parms = {p.get("name"): (p.get("value"), p.get("datatype")) for p in blocks[0] if p.tag == "parm"}
    robo, robo_type = parms.get("ROBOSupport", ("true", "boolean"))
    if robo not in ("true", "false") or robo_type != "boolean":
        raise SimulatorError("provisioning-renewal", f"ROBOSupport is {robo!r} ({robo_type}), expected a boolean")
    days = {}
    for name, default in (("RenewPeriod", "42"), ("RetryInterval", "7")):  # the CSP's defaults
        value, datatype = parms.get(name, (default, "integer"))
        if datatype != "integer" or not (value or "").isdigit() or not 1 <= int(value) <= 1000:
            raise SimulatorError("provisioning-renewal", f"{name} is {value!r} ({datatype}), expected 1-1000 days")
        days[name] = int(value)
    if days["RetryInterval"] > days["RenewPeriod"]:
        raise SimulatorError("provisioning-renewal", f"RetryInterval {days['RetryInterval']} exceeds RenewPeriod {days['RenewPeriod']}")
    return RenewalSchedule(robo == "true", days["RenewPeriod"], days["RetryInterval"])


def validate_provisioning_document(document, *, public_key, device_id, device_enrollment=False, subject=None,
                                   now=None):
    """Every check of the provisioning document (MS-MDE2 2.2.9.1). Returns (Provisioning, lxml tree). `subject`
    is the expected certificate CN when it is not the DeviceID (the Entra device id of an Entra join)."""
    root = parse_xml(document, "provisioning")
    if root.tag != "wap-provisioningdoc":
        raise SimulatorError("provisioning", f"the root element is <{root.tag}>, expected <wap-provisioningdoc>")
    kinds = [c.get("type") for c in _characteristics(root)]
    unexpected = sorted(set(kinds) - {"CertificateStore", "APPLICATION", "DMClient"})
    if unexpected:
        raise SimulatorError("provisioning", f"unexpected top-level characteristics {unexpected} (only CertificateStore, APPLICATION, DMClient)")

    location = "System" if device_enrollment else "User"
    entries = _certificate_entries(root)
    got = [f"{store}/{loc}" for store, loc, _, _ in entries]
    wanted = ["Root/System", "CA/System", f"My/{location}"]
    if got != wanted:
        raise SimulatorError("provisioning-certificate-order", f"certificates are in {', '.join(got) or 'nothing'}; expected {', '.join(wanted)} in that order")
    (_, _, root_cert, _), (_, _, issuing, _), (_, _, client, my_location) = entries
    if not _characteristics(my_location, "PrivateKeyContainer"):
        raise SimulatorError("provisioning-private-key-container", f"My/{location} has no PrivateKeyContainer")
    _check_client_certificate(client, public_key=public_key, subject=subject or device_id, now=now)
    if not (_is_ca(root_cert) and _is_ca(issuing)):
        raise SimulatorError("provisioning-chain", "the Root and CA certificates must both say CA=true")
    _verify_issued(root_cert, root_cert, "the root certificate is not self-signed")
    _verify_issued(issuing, root_cert, "the issuing CA is not signed by the root")
    _verify_issued(client, issuing, "the client certificate is not signed by the issuing CA")

    provider_id, address = _check_application(root, device_enrollment=device_enrollment)
    _check_dmclient(root, provider_id)
    renewal = _renewal_schedule(root)
    return Provisioning(root_cert, issuing, client, location, provider_id, address, renewal), root.getroottree()


def validate_renewal_document(document, *, public_key, previous, provisioning, device_enrollment=False, now=None):
    """MS-MDE2 3.5: the answer to a renewal holds only the CertificateStore and APPLICATION/PROVIDER-ID
    of our enrollment; its client certificate carries our new key and the old certificate's subject,
    expires no earlier, and chains to the root we were given at enrollment. Returns the new certificate."""
    root = parse_xml(document, "renewal-document")
    if root.tag != "wap-provisioningdoc":
        raise SimulatorError("renewal-document", f"the root element is <{root.tag}>, expected <wap-provisioningdoc>")
    kinds = [c.get("type") for c in _characteristics(root)]
    if kinds != ["CertificateStore", "APPLICATION"]:
        raise SimulatorError("renewal-document", f"top-level characteristics {kinds}; a renewal answer holds only "
                             "CertificateStore and APPLICATION")
    application = _characteristics(root, "APPLICATION")[0]
    if _parms(application) != {"PROVIDER-ID": provisioning.provider_id} or _characteristics(application):
        raise SimulatorError("renewal-provider-id", f"APPLICATION holds {sorted(_parms(application))}, expected only "
                             f"PROVIDER-ID {provisioning.provider_id!r}")
    location = "System" if device_enrollment else "User"
    entries = _certificate_entries(root)
    clients = [(loc, cert, element) for store, loc, cert, element in entries if store == "My"]
    if [loc for loc, _, _ in clients] != [location]:
        raise SimulatorError("renewal-certificate-store", f"client certificates in {[f'My/{loc}' for loc, _, _ in clients]}, "
                             f"expected one in My/{location}")
    _, client, my_location = clients[0]
    if not _characteristics(my_location, "PrivateKeyContainer"):
        raise SimulatorError("provisioning-private-key-container", f"My/{location} has no PrivateKeyContainer")
    issuing = next((cert for store, _, cert, _ in entries if store == "CA"), provisioning.issuing)
    for store, _, cert, _ in entries:
        if store == "Root" and cert != provisioning.root:
            raise SimulatorError("renewal-chain", "the answer carries a root other than the one we trust")
    _verify_issued(issuing, provisioning.root, "the issuing CA is not signed by the root we trust")
    _verify_issued(client, issuing, "the new certificate is not signed by the issuing CA")
    common_names = [a.value for a in previous.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    _check_client_certificate(client, public_key=public_key, subject=common_names[0] if common_names else "",
                              now=now)
    if client.subject != previous.subject:
        raise SimulatorError("renewal-subject", f"the new certificate is for {client.subject.rfc4514_string()}, "
                             f"the old one for {previous.subject.rfc4514_string()}")
    if client.serial_number == previous.serial_number:
        raise SimulatorError("renewal-serial", "the new certificate has the old one's serial number")
    if client.not_valid_after_utc < previous.not_valid_after_utc:
        raise SimulatorError("renewal-expiry", f"the new certificate expires {client.not_valid_after_utc}, before "
                             f"the old one ({previous.not_valid_after_utc})")
    return client


def signed_renewal_request(certificate, private_key, csr_der):
    """The PKCS#7 of a ROBO renewal (MS-MDE2 3.5; MS-WCCE 3.1.1.4.3.2.1): SignedData around the new
    PKCS#10, signed by the key of the certificate being renewed, which it carries."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(csr_der).add_signer(certificate, private_key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def client_certificate_header(certificate):
    """The X-SSL-Client-Cert value nginx forwards after verifying a TLS client certificate
    ($ssl_client_escaped_cert: the URL-escaped PEM)."""
    return urllib.parse.quote(certificate.public_bytes(serialization.Encoding.PEM).decode())


# --- federated sign-in (MS-MDE2 3.2) --------------------------------------------------------------

def sign_in_url(authentication_url, email):
    """AuthenticationServiceUrl with appru and login_hint added, its own query string kept."""
    parts = urllib.parse.urlsplit(authentication_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [("appru", APPRU), ("login_hint", email)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))


def _forms(html, url, check):
    try:
        document = lxml.html.document_fromstring(html, base_url=url)
    except (etree.ParserError, ValueError) as exc:
        raise SimulatorError(check, f"the page is not HTML ({exc})") from None
    return document, document.forms


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def form_post_headers(page_url, action, referrer_policy=None):
    """Origin and Referer as the broker's browser engine sends them when the page posts its form
    (Fetch standard, "append a request Origin header"; Referrer Policy). Django's CSRF check reads
    them, so a page whose own Referrer-Policy makes the browser send `Origin: null` fails here as it
    would on a device."""
    known = {"no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
             "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"}
    tokens = [t.strip().lower() for t in (referrer_policy or "").split(",") if t.strip().lower() in known]
    policy = tokens[-1] if tokens else "strict-origin-when-cross-origin"
    same_origin = _origin(page_url) == _origin(action)
    downgrade = page_url.startswith("https:") and not action.startswith("https:")
    origin = _origin(page_url)
    if policy == "no-referrer" or (policy == "same-origin" and not same_origin):
        origin_header = "null"
    elif downgrade and policy in ("no-referrer-when-downgrade", "strict-origin", "strict-origin-when-cross-origin"):
        origin_header = "null"
    else:
        origin_header = origin
    full = urllib.parse.urldefrag(page_url)[0]
    referer = {
        "no-referrer": None,
        "no-referrer-when-downgrade": None if downgrade else full,
        "same-origin": full if same_origin else None,
        "origin": origin + "/",
        "strict-origin": None if downgrade else origin + "/",
        "origin-when-cross-origin": full if same_origin else origin + "/",
        "strict-origin-when-cross-origin": full if same_origin else (None if downgrade else origin + "/"),
        "unsafe-url": full,
    }[policy]
    headers = {"Origin": origin_header}
    if referer:
        headers["Referer"] = referer
    return headers


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


def fill_sign_in_form(html, page_url, email, password, pin=None):
    """The sign-in form filled as a user would: (action URL, form fields). Hidden inputs (the CSRF
    token among them) are kept; the identity and secret fields are filled: a field named "pin" gets
    the registration PIN, the other secret field the password."""
    check = "sign-in-form"
    _, forms = _forms(html, page_url, check)
    candidates = [f for f in forms if f.xpath(".//input[@type='password']")]
    if len(candidates) != 1:
        raise SimulatorError(check, f"expected one form with a password field on {page_url}, found {len(candidates)}")
    form = candidates[0]
    if (form.method or "GET").upper() != "POST":
        raise SimulatorError(check, "the sign-in form does not use POST")
    secret_fields = form.xpath(".//input[@type='password']")
    pin_fields = [f for f in secret_fields if f.get("name") == "pin"]
    password_fields = [f for f in secret_fields if f.get("name") != "pin"]
    if pin_fields and pin is None:
        raise SimulatorError(check, "the sign-in form asks for a registration PIN; pass --pin")
    identity_fields = [
        i for i in form.xpath(".//input[@name]")
        if (i.get("type") or "text").lower() in ("text", "email") and i.get("name")
    ]
    if not identity_fields:
        raise SimulatorError(check, "the sign-in form has no identity (email or user name) field")
    identity = next((i for i in identity_fields if (i.get("type") or "").lower() == "email"), identity_fields[0])
    filled = [(identity.name, email)] + [(f.name, password) for f in password_fields[:1]]
    filled += [(f.name, pin) for f in pin_fields[:1]]
    values = [(name, value) for name, value in form.form_values() if name not in {n for n, _ in filled}]
    values += filled
    submit = form.xpath(".//*[(self::input or self::button) and @type='submit' and @name]")
    if submit:
        values.append((submit[0].get("name"), submit[0].get("value") or ""))
    action = form.action or page_url
    return action, values


def read_auto_post(html, page_url):
    """The wresult token from the page that auto-posts back to appru (MS-MDE2 3.2)."""
    check = "sign-in-result"
    document, forms = _forms(html, page_url, check)
    for form in forms:
        if form.get("action") == APPRU:
            if (form.method or "GET").upper() != "POST":
                raise SimulatorError(check, "the form back to appru does not use POST")
            token = dict(form.form_values()).get("wresult", "")
            if not token:
                raise SimulatorError(check, "the form back to appru has no wresult")
            return token
    if any(f.xpath(".//input[@type='password']") for f in forms):
        errors = " ".join(" ".join(e.text_content().split()) for e in document.xpath(
            "//*[contains(concat(' ', normalize-space(@class), ' '), ' errorlist ')"
            " or contains(concat(' ', normalize-space(@class), ' '), ' error ') or @role='alert']"))
        raise SimulatorError(check, f"the server showed the sign-in form again{': ' + errors if errors else ''}")
    actions = [f.get("action") for f in forms]
    raise SimulatorError(check, f"no form posts to {APPRU}; form actions found: {actions}")


# --- Entra ID (Microsoft Entra integration with MDM) ----------------------------------------------

def jwt_claims(token):
    """The payload of a JWT, unverified (the client only reads it, as Windows does for the device
    id); {} when it is not readable, so that the server gets to refuse a bad token itself."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def terms_page_url(terms_url, request_id, joining):
    """The terms-of-use URL with the query Windows adds (Entra integration with MDM, terms of use)."""
    parts = urllib.parse.urlsplit(terms_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [("redirect_uri", TERMS_REDIRECT_URI), ("client-request-id", request_id), ("api-version", "1.0")]
    if joining:
        query.append(("mode", "azureadjoin"))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))


def accept_form(html, page_url, *, joining):
    """(action URL, fields) of the page's Accept button. During an Entra join the page must not
    offer Decline (Windows shows none there)."""
    check = "terms-page"
    _, forms = _forms(html, page_url, check)
    for form in forms:
        buttons = form.xpath(".//*[(self::button or self::input) and @type='submit' and @name]")
        accept = [b for b in buttons if (b.get("value") or "").lower() == "accept"]
        if not accept:
            continue
        if joining and any((b.get("value") or "").lower() == "decline" for b in buttons):
            raise SimulatorError("terms-decline", "the terms-of-use page offers Decline during an Entra join")
        if (form.method or "GET").upper() != "POST":
            raise SimulatorError(check, "the terms-of-use form does not use POST")
        values = list(form.form_values()) + [(accept[0].get("name"), accept[0].get("value"))]
        return form.action or page_url, values
    raise SimulatorError(check, f"no Accept button on the terms-of-use page: {_page_text(html)}")


def read_terms_answer(location, request_id):
    """The OpaqueBlob of the 302 back to redirect_uri after Accept; errors raise."""
    check = "terms-answer"
    if not (location or "").startswith(TERMS_REDIRECT_URI + "?"):
        raise SimulatorError(check, f"the answer goes to {location!r}, not back to {TERMS_REDIRECT_URI}")
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query, keep_blank_values=True))
    if "error" in answer:
        raise SimulatorError(check, f"error {answer['error']}: {answer.get('error_description', '')}")
    if answer.get("IsAccepted") != "true":
        raise SimulatorError(check, f"IsAccepted is {answer.get('IsAccepted')!r}, expected 'true'")
    if answer.get("client-request-id") != request_id:
        raise SimulatorError(check, f"client-request-id {answer.get('client-request-id')!r} is not ours ({request_id})")
    if not answer.get("OpaqueBlob"):
        raise SimulatorError(check, "no OpaqueBlob with the acceptance")
    return answer["OpaqueBlob"]


# --- the client ------------------------------------------------------------------------------------

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


def _ssl_context(verify_tls, ca_file):
    if not verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


def _random_mac():
    # Locally administered, unicast: never a real vendor's address.
    octets = [secrets.randbelow(256) for _ in range(6)]
    octets[0] = (octets[0] | 0x02) & 0xFE
    return "".join(f"{o:02X}" for o in octets)


MSI_STALL_MODES = (None, "once", "always")
MSI_PARKED_STATUS = "50"  # EnterpriseDesktopAppManagement Status: enforcement in progress


class Simulator:
    """One simulated Windows enrollment. `run()` returns an EnrollmentResult or raises SimulatorError."""

    USER_AGENT = "ENROLLClient"
    BROWSER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; WebView/3.0) mdmportal-simulator"

    def __init__(self, base_url, email, password=None, federated=False, hololens=False,
                 device_enrollment=False, device_id=None, verify_tls=True, ca_file=None,
                 *, csr_hash="sha1", timeout=30, private_key=None, provisioning_package=False, pin=None,
                 context_items=None, entra_token=None, terms_url=None, msi_install_status="70", resolve=None,
                 client_cert_header=False, login_status="user", entra_enrollment_data=None,
                 follow_auth_policy=False, serial_number=None, hardware_hash=None, user_context_after=0,
                 second_user_at=None, msi_stall=None, clock_skew_hours=0, retry_rst=False, wbxml=False,
                 before_renew=None):
        self.discovery_url = discovery_url(base_url)
        # Extra (name, value) context items sent with the enrollment, e.g. Autopilot's ZeroTouchProvisioning
        # or OfflineAutoPilotEnrollmentCorrelator (never the serial number or hardware hash: see below).
        self.extra_context_items = list(context_items or [])
        self.secure = urllib.parse.urlsplit(self.discovery_url).scheme == "https"
        self.entra_token = entra_token
        self.entra_claims = jwt_claims(entra_token) if entra_token else {}
        # Entra clients discover with the account's UPN, none for a user-less run.
        claimed_upn = next((self.entra_claims[name] for name in ("upn", "unique_name", "preferred_username")
                            if isinstance(self.entra_claims.get(name), str)), "")
        self.email = email if email is not None else claimed_upn
        self.password = password
        self.pin = pin  # the registration PIN the sign-in page asks for (PIN and password, or PIN only)
        self.federated = federated or bool(entra_token)
        self.terms_url = terms_url
        self.enrollment_data = None
        # What the RST carries as EnrollmentData (the terms page's OpaqueBlob): "blob", the OpaqueBlob of the accepted
        # terms-of-use page; or, as Windows does when no blob came back, the literal "null", an empty
        # value or no item at all. By default the blob with a terms page, nothing without one.
        if entra_enrollment_data is None:
            entra_enrollment_data = "blob" if terms_url else "absent"
        if entra_enrollment_data not in ENROLLMENT_DATA_CHOICES:
            raise SimulatorError("entra-enrollment-data", f"{entra_enrollment_data!r} is not one of "
                                 f"{', '.join(ENROLLMENT_DATA_CHOICES)}")
        if (entra_enrollment_data == "blob") != bool(terms_url):
            raise SimulatorError("entra-enrollment-data", "the terms-of-use blob comes from the terms page: "
                                 "give a terms URL for 'blob', and none for 'null', 'empty' or 'absent'")
        self.entra_enrollment_data = entra_enrollment_data
        # As Windows' Settings does: offer OnPremise and Federated and take whichever the server answers
        # (its sign-in page for Federated, the password box for OnPremise) instead of insisting on one.
        self.follow_auth_policy = follow_auth_policy
        self.hololens = hololens
        self.device_enrollment = device_enrollment
        # As a provisioning package's Workplace/Enrollments does (Provisioning CSP): OnPremise only, the
        # service UPN and PIN in the UsernameToken, in the background, EnrollmentType Full [U].
        self.provisioning_package = provisioning_package
        if provisioning_package and (federated or device_enrollment or hololens):
            raise SimulatorError("provisioning-package", "a provisioning package enrolls a PC on-premise, Full")
        if device_id is not None and not (len(device_id) == 32 and all(c in "0123456789abcdefABCDEF" for c in device_id)):
            raise SimulatorError("device-id", f"{device_id!r} is not 32 hex digits")
        self.device_id = (device_id or secrets.token_hex(16)).upper()
        self.hw_dev_id = secrets.token_hex(32).upper()
        self.device_name = ("HOLOLENS-" if hololens else "DESKTOP-") + secrets.token_hex(4).upper()[:7]
        # What the PC answers to Gets on ./DevDetail/Ext/Microsoft/SMBIOSSerialNumber and
        # ./DevDetail/Ext/DeviceHardwareData (DevDetail CSP), as an Autopilot CSV would list it. Windows
        # puts neither in its enrollment request: the server has to ask.
        self.serial_number = serial_number or secrets.token_hex(6).upper()
        self.hardware_hash = hardware_hash or base64.b64encode(self.hw_dev_id.encode()).decode()
        self.csr_hash = csr_hash
        self.timeout = timeout
        # Benchmarks pass a pre-generated key so that client-side key generation stays out of the
        # server's figures; otherwise a fresh key is made as Windows does.
        self.private_key = private_key
        self._verify_tls, self._ca_file = verify_tls, ca_file
        # {(host, port): address} connections go to instead of the host's DNS address (--resolve).
        self._resolve = {(host.lower(), port): address for (host, port), address in (resolve or {}).items()}
        # How the device's certificate reaches the server once enrolled (renewal, check-in): over https
        # in the TLS handshake, as Windows does, for nginx to forward; in the X-SSL-Client-Cert header
        # nginx would have set when asked (a server without nginx in front) and always over plain http.
        self.client_cert_header = client_cert_header or not self.secure
        context = _ssl_context(verify_tls, ca_file)
        self._soap = self._opener(context, _RefuseRedirects())
        self._browser = self._opener(context, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self._tls_openers = {}
        self.steps = []
        self.responses = {}
        # The device's configuration as the server's commands left it, kept across check-ins: nodes set
        # by Replace/Add and what app installs report (see ManagementClient.apply).
        self.nodes = {}
        # The last NextNonce the server gave for the APPSRV digest, kept across check-ins as the
        # device keeps it in its DM account (None: the AAUTHDATA of the provisioning document).
        self.appsrv_nonce = None
        # The Status an MSI install reaches (EnterpriseDesktopAppManagement: 70 completed, 60 failed).
        self.msi_install_status = str(msi_install_status)
        # An MSI install that parks, as seen in the field: its Status stays at 50 (enforcement in
        # progress) and never moves. "once": the first DownloadInstall of each product parks and one sent
        # again completes; "always": every one parks. None: installs end at msi_install_status.
        if msi_stall not in MSI_STALL_MODES:
            raise SimulatorError("msi-stall", f"{msi_stall!r} is not one of {', '.join(map(str, MSI_STALL_MODES))}")
        self.msi_stall = msi_stall
        self.msi_install_runs = {}  # product id -> DownloadInstall Execs received
        # What the 1224 LoginStatus alert of each check-in reports: "user" once someone signed in,
        # "none" during the device phase of setup (change it between check-ins).
        self.login_status = login_status
        # OMA-DM sessions run so far (ManagementClient.run counts them).
        self.sessions = 0
        # During the account-setup phase of OOBE the signed-in user's MDM context does not exist at
        # first: Windows answers 405 (Command not allowed) to every command under ./User/ in the first
        # `user_context_after` sessions, then carries them out (switch: --user-context-after).
        self.user_context_after = int(user_context_after or 0)
        # The session at which another person signs in to the device for the first time (switch:
        # --second-user). Windows shows that user an account-setup page ("Account setup: identifying")
        # unless DMClient FirstSyncStatus/SkipUserStatusPage is true on the device, and the page then
        # waits for a user-scope release the server gave the first user only, until its time-out: the
        # simulated device refuses to go on (SimulatorError "second-user") when the node is not set.
        self.second_user_at = second_user_at
        self.second_user_page = None  # "skipped" once the later user's sign-in got past the page
        # How far the device's clock is off ours (hours, negative: behind). Windows checks the
        # certificates it is given against its own clock (see now()).
        self.clock_skew = timedelta(hours=clock_skew_hours)
        # Send the RequestSecurityToken, drop the answer as if the connection had failed, and send
        # the very same message again; the second answer is the one kept.
        self.retry_rst = retry_rst
        # Send the first message of each OMA-DM session as WBXML (application/vnd.syncml.dm+wbxml)
        # and fall back to XML when the server refuses that Content-Type with 415.
        self.wbxml = wbxml
        # Called by renew() before it posts (e.g. to wait while the enrollment URL is regenerated).
        self.before_renew = before_renew

    def now(self):
        """The device's clock: ours, off by clock_skew."""
        return datetime.now(timezone.utc) + self.clock_skew

    @property
    def enrollment_type(self):
        return "Device" if self.device_enrollment else "Full"

    @property
    def offered_policies(self):
        return ["OnPremise"] if self.provisioning_package else ["OnPremise", "Federated"]

    @property
    def os_edition(self):
        return OSEDITION_HOLOLENS if self.hololens else OSEDITION_PRO

    @property
    def application_version(self):
        return HOLOLENS_VERSION if self.hololens else PC_VERSION

    # -- HTTP --------------------------------------------------------------------------------------

    def _open(self, opener, request, check, *, redirect_ok=False):
        try:
            response = opener.open(request, timeout=self.timeout)
            status, headers, body = response.status, response.headers, response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read(MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SimulatorError(check, f"cannot reach {request.full_url}: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise SimulatorError(check, f"the answer from {request.full_url} is larger than {MAX_RESPONSE_BYTES} bytes")
        if 300 <= status < 400 and not redirect_ok:
            raise SimulatorError(check, f"{request.full_url} answered {status} redirecting to {headers.get('Location')!r}; Windows does not follow redirects here")
        return status, headers, body

    def _timed(self, name, function, *args):
        started = time.perf_counter()
        value, detail = function(*args)
        self.steps.append(Step(name, time.perf_counter() - started, detail))
        return value

    def _post_soap(self, url, envelope, check, *, headers=None, opener=None):
        data = etree.tostring(envelope, xml_declaration=False, encoding="utf-8")
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": SOAP_CONTENT_TYPE, "User-Agent": self.USER_AGENT, "Accept": "*/*", **(headers or {}),
        })
        status, headers, body = self._open(opener or self._soap, request, check)
        content_type = headers.get("Content-Type", "")
        is_soap = content_type.split(";")[0].strip().lower() in ("application/soap+xml", "text/xml")
        # A fault may come with 500 (SOAP 1.2 allows it); read it rather than report a bare status.
        if status == 500 and is_soap:
            return body
        if status != 200:
            raise SimulatorError(check, f"{url} answered HTTP {status}: {_page_text(body)}")
        if content_type.split(";")[0].strip().lower() != "application/soap+xml":
            raise SimulatorError(f"{check}-content-type", f"Content-Type is {content_type!r}, expected application/soap+xml")
        if headers.get("Content-Length") is None:
            raise SimulatorError(f"{check}-content-length", "the answer has no Content-Length (Windows needs it: never chunked)")
        return body

    # -- messages ----------------------------------------------------------------------------------

    def _header(self, action, message_id, url, security=None):
        children = [
            A.Action(action, **{f"{{{SOAP12_NS}}}mustUnderstand": "1"}),
            A.MessageID(message_id),
            A.ReplyTo(A.Address(ANONYMOUS)),
            A.To(url, **{f"{{{SOAP12_NS}}}mustUnderstand": "1"}),
        ]
        if security is not None:
            children.append(security)
        return S.Header(*children)

    def _security(self, token):
        """MS-MDE2 3.3, 3.4: UsernameToken on-premise, the wresult as BinarySecurityToken
        federated, the Entra token as a JWT BinarySecurityToken."""
        must = {f"{{{SOAP12_NS}}}mustUnderstand": "1"}
        if self.entra_token is not None:
            encoded = base64.b64encode(self.entra_token.encode("ascii")).decode("ascii")
            return WSSE.Security(WSSE.BinarySecurityToken(encoded, ValueType=JWT_TOKEN, EncodingType=BASE64_BINARY), **must)
        if token is not None:
            encoded = base64.b64encode(token.encode("utf-8")).decode("ascii")
            return WSSE.Security(WSSE.BinarySecurityToken(encoded, ValueType=USER_TOKEN, EncodingType=BASE64_BINARY), **must)
        return WSSE.Security(
            WSSE.UsernameToken(
                WSSE.Username(self.email),
                WSSE.Password(self.password or "", **{f"{{{WSSE_NS}}}Type": PASSWORD_TEXT}),
                **{f"{{{WSU_NS}}}Id": f"uuid-{uuid.uuid4()}-1"},
            ),
            **must,
        )

    def discover_envelope(self, message_id):
        D = ElementMaker(namespace=DISCOVERY_NS, nsmap={None: DISCOVERY_NS})
        request = D.request(
            D.EmailAddress(self.email),
            D.RequestVersion(REQUEST_VERSION),
            D.DeviceType("CIMClient_Windows"),
            D.ApplicationVersion(self.application_version),
            D.OSEdition(self.os_edition),
            D.AuthPolicies(*[D.AuthPolicy(policy) for policy in self.offered_policies]),
        )
        return S.Envelope(self._header(DISCOVER_ACTION, message_id, self.discovery_url), S.Body(D.Discover(request)))

    def policies_envelope(self, message_id, url, token):
        X = ElementMaker(namespace=XCEP_NS, nsmap={None: XCEP_NS})
        nil = {f"{{{XSI_NS}}}nil": "true"}
        body = etree.Element(f"{{{SOAP12_NS}}}Body", nsmap={"xsi": XSI_NS, "xsd": XSD_NS})
        body.append(X.GetPolicies(X.client(X.lastUpdate(**nil), X.preferredLanguage(**nil)), X.requestFilter(**nil)))
        return S.Envelope(self._header(GET_POLICIES_ACTION, message_id, url, self._security(token)), body)

    def context_items(self):
        """MS-MDE2 AdditionalContext items, as a Windows client of the simulated kind sends them."""
        return [
            ("UXInitiated", "false" if self.device_enrollment or self.provisioning_package else "true"),
            ("HWDevID", self.hw_dev_id),
            ("Locale", "en-US"),
            ("TargetedUserLoggedIn", "true"),
            ("OSEdition", self.os_edition),
            ("DeviceName", self.device_name),
            ("MAC", _random_mac()),
            ("DeviceID", self.device_id),
            ("EnrollmentType", self.enrollment_type),
            ("DeviceType", "CIMClient_Windows"),
            ("OSVersion", self.application_version),
            ("ApplicationVersion", self.application_version),
            ("NotInOobe", "true"),
            ("RequestVersion", REQUEST_VERSION),
            *self.extra_context_items,
        ] + self._enrollment_data_items()

    def _enrollment_data_items(self):
        """The EnrollmentData context item as entra_enrollment_data says (absent outside Entra runs)."""
        if not self.entra_token:
            return [("EnrollmentData", self.enrollment_data)] if self.enrollment_data else []
        return {
            "blob": [("EnrollmentData", self.enrollment_data)] if self.enrollment_data else [],
            "null": [("EnrollmentData", "null")],
            "empty": [("EnrollmentData", "")],
            "absent": [],
        }[self.entra_enrollment_data]

    def enrollment_envelope(self, message_id, url, token, csr_der):
        T = ElementMaker(namespace=WST_NS, nsmap={"wst": WST_NS, "wsse": WSSE_NS, "ac": AC_NS})
        AC = ElementMaker(namespace=AC_NS)
        items = [AC.ContextItem(AC.Value(value), Name=name) for name, value in self.context_items()]
        rst = T.RequestSecurityToken(
            T.TokenType(TOKEN_TYPE),
            T.RequestType(ISSUE),
            WSSE.BinarySecurityToken(base64.b64encode(csr_der).decode("ascii"), ValueType=PKCS10, EncodingType=BASE64_BINARY),
            AC.AdditionalContext(*items),
        )
        return S.Envelope(self._header(RST_ACTION, message_id, url, self._security(token)), S.Body(rst))

    def renewal_envelope(self, message_id, url, signed_request):
        """MS-MDE2 3.5.4.1.1.1: RequestType Renew and the PKCS#7, no user token (the TLS client certificate is the
        credential); the context items Microsoft's renewal sample sends, plus our DeviceID."""
        T = ElementMaker(namespace=WST_NS, nsmap={"wst": WST_NS, "wsse": WSSE_NS, "ac": AC_NS})
        AC = ElementMaker(namespace=AC_NS)
        items = [("DeviceType", "CIMClient_Windows"), ("ApplicationVersion", self.application_version),
                 ("DeviceID", self.device_id)]
        rst = T.RequestSecurityToken(
            T.TokenType(TOKEN_TYPE),
            T.RequestType(RENEW),
            WSSE.BinarySecurityToken(base64.b64encode(signed_request).decode("ascii"), ValueType=PKCS7,
                                     EncodingType=BASE64_BINARY),
            AC.AdditionalContext(*[AC.ContextItem(AC.Value(value), Name=name) for name, value in items]),
        )
        return S.Envelope(self._header(RST_ACTION, message_id, url), S.Body(rst))

    def _opener(self, context, *handlers):
        return build_opener(context, self._resolve, *handlers)

    def device_opener(self, certificate, private_key):
        """(opener, headers) for a request authenticated by the device's certificate: the certificate
        in the TLS handshake, or the header nginx would forward (see client_cert_header)."""
        if self.client_cert_header:
            return self._soap, {CLIENT_CERT_HEADER: client_certificate_header(certificate)}
        key = thumbprint(certificate)
        if key not in self._tls_openers:
            self._tls_openers[key] = self._client_tls_opener(certificate, private_key)
        return self._tls_openers[key], {}

    def _client_tls_opener(self, certificate, private_key):
        """Present the client certificate in the TLS handshake as Windows does (nginx then forwards
        it); ssl only loads a key pair from files, so they live in a private temporary folder for the
        time it takes to load them."""
        context = _ssl_context(self._verify_tls, self._ca_file)
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = os.path.join(folder, "client.pem"), os.path.join(folder, "client.key")
            with open(cert_file, "wb") as out:
                out.write(certificate.public_bytes(serialization.Encoding.PEM))
            with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                out.write(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
            context.load_cert_chain(cert_file, key_file)
        return self._opener(context, _RefuseRedirects())

    # -- steps -------------------------------------------------------------------------------------

    def probe(self):
        request = urllib.request.Request(self.discovery_url, method="GET", headers={"User-Agent": self.USER_AGENT})
        status, _, _ = self._open(self._soap, request, "probe")
        if status != 200:
            raise SimulatorError("probe", f"GET {self.discovery_url} answered HTTP {status}, expected 200")
        return None, "200 OK"

    def discover(self):
        message_id = new_message_id()
        body = self._post_soap(self.discovery_url, self.discover_envelope(message_id), "discover")
        self.responses["discover"] = envelope = parse_xml(body, "discover")
        discovery = parse_discover_response(envelope, message_id, secure=self.secure, entra=bool(self.entra_token))
        expected = "Federated" if self.federated else "OnPremise"
        if self.follow_auth_policy and not self.entra_token:
            expected = discovery.auth_policy  # Windows follows the server's choice
        if discovery.auth_policy != expected and self.entra_token:
            raise SimulatorError("discover-auth-policy", f"the server chose {discovery.auth_policy}, not Federated: is "
                                 "Entra ID enrollment switched on and fully configured there?")
        if discovery.auth_policy != expected:
            hint = "without --federated" if discovery.auth_policy == "OnPremise" else "with --federated"
            raise SimulatorError("discover-auth-policy", f"the server chose {discovery.auth_policy}, we expected {expected}; run {hint}")
        return discovery, f"AuthPolicy {discovery.auth_policy}, EnrollmentVersion {discovery.enrollment_version}"

    def sign_in(self, authentication_url):
        url = sign_in_url(authentication_url, self.email)
        request = urllib.request.Request(url, headers={"User-Agent": self.BROWSER_AGENT})
        status, headers, page = self._open(self._browser, request, "sign-in-page")
        if status != 200:
            raise SimulatorError("sign-in-page", f"GET {url} answered HTTP {status}: {_page_text(page)}")
        action, fields = fill_sign_in_form(page, url, self.email, self.password or "", self.pin)
        post = urllib.request.Request(action, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
            "User-Agent": self.BROWSER_AGENT, "Content-Type": "application/x-www-form-urlencoded",
            **form_post_headers(url, action, headers.get("Referrer-Policy")),
        })
        status, _, result = self._open(self._browser, post, "sign-in")
        if status != 200:
            raise SimulatorError("sign-in", f"POST {action} answered HTTP {status}: {_page_text(result)}")
        return read_auto_post(result, action), "wresult received"

    @property
    def certificate_subject(self):
        """An Entra join's certificate is named after the Entra device id."""
        if self.entra_token and self.device_enrollment and isinstance(self.entra_claims.get("deviceid"), str):
            return self.entra_claims["deviceid"]
        return self.device_id

    def accept_terms(self):
        """The terms-of-use page (Entra integration with MDM) in the web view, accepted; its OpaqueBlob goes back as
        the EnrollmentData context item. Device enrollments play the OOBE join (FRX, no Decline)."""
        request_id = str(uuid.uuid4())
        url = terms_page_url(self.terms_url, request_id, self.device_enrollment)
        headers = {"User-Agent": self.BROWSER_AGENT, "Authorization": f"Bearer {self.entra_token}",
                   "CXH-HOST": "FRX" if self.device_enrollment else "MOSET"}
        status, response_headers, page = self._open(self._soap, urllib.request.Request(url, headers=headers),
                                                    "terms-page", redirect_ok=True)
        if 300 <= status < 400:
            read_terms_answer(response_headers.get("Location"), request_id)  # raises on the error it carries
            raise SimulatorError("terms-page", f"redirected without showing the terms: {response_headers.get('Location')}")
        if status != 200:
            raise SimulatorError("terms-page", f"GET {url} answered HTTP {status}: {_page_text(page)}")
        action, fields = accept_form(page, url, joining=self.device_enrollment)
        post = urllib.request.Request(action, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
            "User-Agent": self.BROWSER_AGENT, "Content-Type": "application/x-www-form-urlencoded"})
        status, response_headers, page = self._open(self._soap, post, "terms-answer", redirect_ok=True)
        if status != 302:
            raise SimulatorError("terms-answer", f"POST {action} answered HTTP {status}, expected 302: {_page_text(page)}")
        self.enrollment_data = read_terms_answer(response_headers.get("Location"), request_id)
        return self.enrollment_data, "accepted, OpaqueBlob received"

    def get_policies(self, url, token):
        message_id = new_message_id()
        body = self._post_soap(url, self.policies_envelope(message_id, url, token), "policies")
        self.responses["policies"] = envelope = parse_xml(body, "policies")
        policy = parse_policies_response(envelope, message_id)
        return policy, f"minimalKeyLength {policy.minimal_key_length}, hash {policy.hash_oid or 'default'}"

    def make_key(self, policy):
        """The device key, of at least the policy's minimalKeyLength (MS-XCEP)."""
        size = max(2048, policy.minimal_key_length)
        if self.private_key is not None:
            if self.private_key.key_size < size:
                raise SimulatorError("keygen", f"the given key has {self.private_key.key_size} bits; the policy asks for {size}")
            return self.private_key, f"given RSA {self.private_key.key_size}"
        return rsa.generate_private_key(public_exponent=65537, key_size=size), f"RSA {size}"

    def enroll(self, url, token, key):
        csr = build_windows_csr(key, self.device_id, hash_name=self.csr_hash)
        message_id = new_message_id()
        envelope = self.enrollment_envelope(message_id, url, token, csr)
        if self.retry_rst:
            # The answer is lost on the way (a dropped connection, a proxy timing out): Windows has
            # nothing, and sends the very same message again.
            self.responses["enroll-lost"] = parse_xml(self._post_soap(url, envelope, "enroll-first"), "enroll-first")
        body = self._post_soap(url, envelope, "enroll")
        self.responses["enroll"] = envelope = parse_xml(body, "enroll")
        document = parse_enrollment_response(envelope, message_id)
        provisioning, tree = validate_provisioning_document(
            document, public_key=key.public_key(), device_id=self.device_id, device_enrollment=self.device_enrollment,
            subject=self.certificate_subject, now=self.now(),
        )
        subject = provisioning.certificate.subject.rfc4514_string()
        return (key, provisioning, tree), f"certificate {subject} in My/{provisioning.store_location}"

    def renew(self, result):
        """ROBO certificate renewal (MS-MDE2 3.5) of the enrollment `result` (from run() or an earlier
        renew()): a fresh key and Windows-style CSR, wrapped in a PKCS#7 signed by the current key,
        posted to the enrollment service with the current certificate as the client certificate (in
        the TLS handshake, or the header nginx would forward: see client_cert_header). Returns a
        RenewalResult whose `enrollment` carries the new certificate and key; raises SimulatorError
        (SoapFaultError when the server refuses)."""
        schedule = result.provisioning.renewal
        if schedule is None or not schedule.robo_support:
            raise SimulatorError("renew-not-offered", "the provisioning document does not offer ROBO renewal "
                                 "(CertificateStore/My/WSTEP/Renew/ROBOSupport)")
        if self.before_renew is not None:
            self.before_renew()
        started = time.perf_counter()
        previous, current_key = result.certificate, result.private_key
        key = rsa.generate_private_key(public_exponent=65537, key_size=max(2048, current_key.key_size))
        csr = build_windows_csr(key, self.device_id, hash_name=self.csr_hash)
        signed = signed_renewal_request(previous, current_key, csr)
        url = result.discovery.enrollment_url
        message_id = new_message_id()
        opener, headers = self.device_opener(previous, current_key)
        body = self._post_soap(url, self.renewal_envelope(message_id, url, signed), "renew", headers=headers,
                               opener=opener)
        self.responses["renew"] = envelope = parse_xml(body, "renew")
        document = parse_enrollment_response(envelope, message_id, check="renew")
        certificate = validate_renewal_document(document, public_key=key.public_key(), previous=previous,
                                                provisioning=result.provisioning,
                                                device_enrollment=self.device_enrollment, now=self.now())
        enrollment = replace(result, private_key=key, provisioning=replace(result.provisioning, certificate=certificate))
        return RenewalResult(previous=previous, certificate=certificate, private_key=key, enrollment=enrollment,
                             seconds=time.perf_counter() - started)

    def msi_run_status(self, product):
        """The Status an MSI install of `product` reaches this time (see msi_stall)."""
        runs = self.msi_install_runs[product] = self.msi_install_runs.get(product, 0) + 1
        if self.msi_stall == "always" or (self.msi_stall == "once" and runs == 1):
            return MSI_PARKED_STATUS
        return self.msi_install_status

    def checkin(self, result, *, digest=False, unenroll=False):
        """One OMA-DM session after `result` (from run()): package 1 with the client certificate (in
        the TLS handshake or the header nginx forwards, see client_cert_header; or the APPSRV digest),
        a plausible answer to every command, until the server's Status-only reply. Returns a
        CheckinResult; raises SimulatorError."""
        return ManagementClient(self, result, digest=digest, unenroll=unenroll).run()

    def run(self):
        self.steps, self.responses = [], {}
        self._timed("probe", self.probe)
        discovery = self._timed("discover", self.discover)
        token = None
        if self.entra_token and self.terms_url:
            self._timed("terms", self.accept_terms)
        elif discovery.auth_policy == "Federated" and not self.entra_token:
            token = self._timed("sign-in", self.sign_in, discovery.authentication_url)
        policy = self._timed("policies", self.get_policies, discovery.policy_url, token)
        key = self._timed("keygen", self.make_key, policy)
        key, provisioning, tree = self._timed("enroll", self.enroll, discovery.enrollment_url, token, key)
        return EnrollmentResult(
            discovery_url=self.discovery_url, device_id=self.device_id, hw_dev_id=self.hw_dev_id,
            device_name=self.device_name, os_edition=self.os_edition, enrollment_type=self.enrollment_type, discovery=discovery,
            policy=policy, provisioning=provisioning, private_key=key, provisioning_document=tree,
            responses=dict(self.responses), steps=list(self.steps),
        )


# --- OMA-DM check-in (MS-MDM, OMA DM 1.2) ---------------------------------------------------------
# Spelled out again on purpose (see the module docstring): the client's literals are its own.

SYNCML_NS = "SYNCML:SYNCML1.2"
METINF_NS = "syncml:metinf"
SYNCML_CONTENT_TYPE = "application/vnd.syncml.dm+xml"
WBXML_CONTENT_TYPE = "application/vnd.syncml.dm+wbxml"
OMADM_USER_AGENT = "MSFT OMA DM Client/1.2.0.1"
MANAGEMENT_QUERY = "mode=Maintenance&Platform=WoA"
LOGIN_STATUS_TYPE = "com.microsoft/MDM/LoginStatus"
UNENROLL_TYPE = "com.microsoft:mdm.unenrollment.userrequest"
AUTH_MD5_TYPE = "syncml:auth-md5"
CLIENT_CERT_HEADER = "X-SSL-Client-Cert"
SERVER_VERBS = ("Get", "Replace", "Add", "Delete", "Exec", "Atomic", "Sequence")
MSI_INSTALL_SUFFIX = "/DownloadInstall"
MSI_ROOT = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/"
IS_SYNC_DONE = "/FirstSyncStatus/IsSyncDone"
USER_SCOPE = "./User/"
COMMAND_NOT_ALLOWED = "405"
MAX_SESSION_MESSAGES = 50

SML = ElementMaker(namespace=SYNCML_NS, nsmap={None: SYNCML_NS})
MET = ElementMaker(namespace=METINF_NS, nsmap={None: METINF_NS})
_SML = {"s": SYNCML_NS, "m": METINF_NS}


def fake_device_tree(simulator, hololens=False):
    """A small DevInfo/DevDetail tree of the kind of device simulated (values as Windows reports them)."""
    tree = {
        "./DevInfo/DevId": simulator.device_id,
        "./DevInfo/Man": "Microsoft Corporation",
        "./DevInfo/Mod": "HoloLens 2" if hololens else "Surface Laptop 5",
        "./DevInfo/DmV": "1.3",
        "./DevInfo/Lang": "en-US",
        "./DevDetail/SwV": simulator.application_version,
        "./DevDetail/OEM": "Microsoft Corporation",
        "./DevDetail/HwV": "1.0",
        "./DevDetail/FwV": "22.11.0",
        "./DevDetail/DevTyp": "HoloLens 2" if hololens else "Surface Laptop 5",
        "./DevDetail/Ext/Microsoft/DeviceName": simulator.device_name,
        "./DevDetail/Ext/Microsoft/DNSComputerName": simulator.device_name,
        "./DevDetail/Ext/Microsoft/OSPlatform": "Windows Holographic for Business" if hololens else "Windows 11 Pro",
        "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": simulator.serial_number,
        "./DevDetail/Ext/Microsoft/ProcessorArchitecture": "12" if hololens else "9",
        "./DevDetail/Ext/Microsoft/TotalRAM": "4096" if hololens else "16384",
        "./DevDetail/Ext/DeviceHardwareData": simulator.hardware_hash,
        "./Vendor/MSFT/DeviceStatus/OS/Edition": simulator.os_edition,
    }
    return tree


@dataclass
class ServerMessage:
    """One reply of the server, as the simulated device read it."""

    msg_id: int
    header_code: str
    statuses: list  # (CmdRef, Cmd, code) for our commands
    commands: list  # (verb, CmdID, LocURI, Format, Data)
    answers: list = field(default_factory=list)  # our Status code per command, same order

    def describe(self):
        received = ", ".join(f"{verb} {target}" for verb, _, target, _, _ in self.commands) or "no command (session ends)"
        return f"message {self.msg_id}: SyncHdr {self.header_code}; {received}"


@dataclass
class CheckinResult:
    session_id: str
    auth: str
    messages: list
    wbxml_refused: str | None = None  # with Simulator(wbxml=True): the Accept of the server's 415


    @property
    def commands(self):
        return [command for message in self.messages for command in message.commands]

    def as_dict(self):
        data = {
            "ok": True, "session_id": self.session_id, "auth": self.auth,
            "messages": [{"msg_id": m.msg_id, "header_status": m.header_code,
                          "commands": [{"verb": v, "cmd_id": c, "target": t, "format": f, "data": d, "answer": a}
                                       for (v, c, t, f, d), a in zip(m.commands, m.answers)]}
                         for m in self.messages],
        }
        if self.wbxml_refused is not None:
            data["wbxml_refused"] = self.wbxml_refused
        return data


def appsrv_credentials(tree):
    """(AAUTHNAME, AAUTHSECRET, AAUTHDATA) of the APPSRV APPAUTH block of a provisioning document."""
    for block in tree.getroot().iter("characteristic"):
        if block.get("type") != "APPAUTH":
            continue
        parms = _parms(block)
        if parms.get("AAUTHLEVEL") == "APPSRV":
            return parms.get("AAUTHNAME") or "", parms.get("AAUTHSECRET") or "", parms.get("AAUTHDATA") or ""
    raise SimulatorError("checkin-appauth", "the provisioning document has no APPSRV APPAUTH block")


def md5_credentials(name, secret, nonce_b64):
    """OMA-DM syncml:auth-md5: b64(md5(b64(md5("name:secret")) + ":" + nonce))."""
    inner = base64.b64encode(hashlib.md5(f"{name}:{secret}".encode()).digest())
    nonce = base64.b64decode(nonce_b64)
    return base64.b64encode(hashlib.md5(inner + b":" + nonce).digest()).decode()


class ManagementClient:
    """The OMA-DM side of a simulated Windows device: one session per `run()`."""

    def __init__(self, simulator, result, *, digest=False, unenroll=False, hololens=None):
        self.simulator, self.result = simulator, result
        self.digest, self.unenroll = digest, unenroll
        self.tree = fake_device_tree(simulator, simulator.hololens if hololens is None else hololens)
        self.name, self.secret, self.nonce = appsrv_credentials(result.provisioning_document)
        self.nonce = simulator.appsrv_nonce or self.nonce
        url = result.provisioning.management_url
        self.url = f"{url}{'&' if '?' in url else '?'}{MANAGEMENT_QUERY}"
        self.session_id = format(secrets.randbelow(0xFFFF) + 1, "X")
        self.msg_id = 0
        self.wbxml_refused = None

    def _header(self, with_credentials):
        children = [SML.VerDTD("1.2"), SML.VerProto("DM/1.2"), SML.SessionID(self.session_id),
                    SML.MsgID(str(self.msg_id)), SML.Target(SML.LocURI(self.result.provisioning.management_url)),
                    SML.Source(SML.LocURI(self.simulator.device_id))]
        if with_credentials:
            cred = md5_credentials(self.name, self.secret, self.nonce)
            children.append(SML.Cred(SML.Meta(MET.Format("b64"), MET.Type(AUTH_MD5_TYPE)), SML.Data(cred)))
        return SML.SyncHdr(*children)

    def package1(self):
        """First message (MS-MDM): 1201, 1224 LoginStatus, Replace of DevInfo (and 1226 when unenrolling)."""
        body = [
            SML.Alert(SML.CmdID("2"), SML.Data("1201")),
            SML.Alert(SML.CmdID("3"), SML.Data("1224"), SML.Item(SML.Meta(MET.Type(LOGIN_STATUS_TYPE)),
                                                                   SML.Data(self.simulator.login_status))),
            SML.Replace(SML.CmdID("4"), *[SML.Item(SML.Source(SML.LocURI(uri)), SML.Data(self.tree[uri]))
                                          for uri in ("./DevInfo/DevId", "./DevInfo/Man", "./DevInfo/Mod",
                                                      "./DevInfo/DmV", "./DevInfo/Lang")]),
        ]
        if self.unenroll:
            body.append(SML.Alert(SML.CmdID("5"), SML.Data("1226"), SML.Item(
                SML.Source(SML.LocURI(f"./Vendor/MSFT/DMClient/Provider/{self.result.provisioning.provider_id}/Unenroll")),
                SML.Meta(MET.Type(UNENROLL_TYPE), MET.Format("int")), SML.Data("1"))))
        return body, {"2": "Alert", "3": "Alert", "4": "Replace", **({"5": "Alert"} if self.unenroll else {})}

    def post(self, body, with_credentials):
        self.msg_id += 1
        document = SML.SyncML(self._header(with_credentials), SML.SyncBody(*body, SML.Final()))
        data = etree.tostring(document, xml_declaration=True, encoding="utf-8")
        headers = {"Content-Type": SYNCML_CONTENT_TYPE, "User-Agent": OMADM_USER_AGENT}
        opener = self.simulator._soap
        if not self.digest:
            opener, cert_headers = self.simulator.device_opener(self.result.certificate, self.result.private_key)
            headers.update(cert_headers)
        if self.simulator.wbxml and self.msg_id == 1 and self.wbxml_refused is None:
            self.wbxml_refused = self.try_wbxml(data, headers, opener)
        request = urllib.request.Request(self.url, data=data, method="POST", headers=headers)
        status, response_headers, content = self.simulator._open(opener, request, "checkin")
        if status != 200:
            raise SimulatorError("checkin-http", f"{self.url} answered HTTP {status}: {_page_text(content)}")
        if response_headers.get("Content-Type", "").split(";")[0].strip().lower() != SYNCML_CONTENT_TYPE:
            raise SimulatorError("checkin-content-type", f"Content-Type is {response_headers.get('Content-Type')!r}")
        if response_headers.get("Content-Length") is None:
            raise SimulatorError("checkin-content-length", "the answer has no Content-Length")
        return content

    def try_wbxml(self, data, headers, opener):
        """Post the first message as WBXML; the server must refuse it with 415 Unsupported Media Type
        naming XML in Accept (RFC 9110 15.5.16), and the same message then goes again as XML with the
        same MsgID (the refused one was never processed). The simulator has no WBXML encoder: the
        body is the XML message under the WBXML Content-Type, so a server answering anything but 415
        fails here. Returns the Accept header."""
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={**headers, "Content-Type": WBXML_CONTENT_TYPE})
        status, response_headers, content = self.simulator._open(opener, request, "checkin-wbxml")
        if status != 415:
            raise SimulatorError("checkin-wbxml", f"{self.url} answered HTTP {status} to a WBXML message, expected "
                                 f"415 Unsupported Media Type: {_page_text(content)}")
        accept = response_headers.get("Accept", "")
        if SYNCML_CONTENT_TYPE not in [value.split(";")[0].strip().lower() for value in accept.split(",")]:
            raise SimulatorError("checkin-wbxml-accept", f"the 415 answer's Accept is {accept!r}; it should name "
                                 f"{SYNCML_CONTENT_TYPE} for the device to fall back to")
        return accept

    def read(self, content, sent, expected_msg_id):
        """Reply rules 1-4 of docs/omadm-sessions.md, checked; returns a ServerMessage."""
        root = parse_xml(content, "checkin")
        if root.tag != f"{{{SYNCML_NS}}}SyncML":
            raise SimulatorError("checkin", f"the answer is <{root.tag}>, not SyncML 1.2")
        header = root.find("s:SyncHdr", _SML)
        body = root.find("s:SyncBody", _SML)
        if header is None or body is None:
            raise SimulatorError("checkin", "SyncHdr or SyncBody missing")
        value = lambda element, path: _text(element.find(path, _SML))  # noqa: E731
        if value(header, "s:SessionID") != self.session_id or value(header, "s:VerProto") != "DM/1.2":
            raise SimulatorError("checkin-header", "the reply does not carry our SessionID and DM/1.2")
        if value(header, "s:Target/s:LocURI") != self.simulator.device_id:
            raise SimulatorError("checkin-header", "the reply's Target is not our DeviceID")
        msg_id = value(header, "s:MsgID")
        if msg_id != str(expected_msg_id):
            raise SimulatorError("checkin-msgid", f"server MsgID {msg_id!r}, expected {expected_msg_id}")
        elements = list(body)
        statuses = [e for e in elements if etree.QName(e).localname == "Status"]
        cmd_ids = [value(e, "s:CmdID") for e in elements if etree.QName(e).localname != "Final"]
        if len(set(cmd_ids)) != len(cmd_ids):
            raise SimulatorError("checkin-cmdid", f"CmdIDs repeat in one message: {cmd_ids}")
        if not statuses or value(statuses[0], "s:Cmd") != "SyncHdr" or value(statuses[0], "s:CmdRef") != "0":
            raise SimulatorError("checkin-status", "the first element is not the Status of our SyncHdr")
        for status in statuses:
            if value(status, "s:MsgRef") != str(self.msg_id):
                raise SimulatorError("checkin-msgref", f"a Status has MsgRef {value(status, 's:MsgRef')}, our MsgID is {self.msg_id}")
        answered = {value(s, "s:CmdRef"): (value(s, "s:Cmd"), value(s, "s:Data")) for s in statuses[1:]}
        header_status = statuses[0]
        # A challenge (401/407) answers the credentials only: the commands were not processed.
        challenged = value(header_status, "s:Data") in ("401", "407")
        if not challenged and (set(answered) != set(sent) or any(answered[ref][0] != name for ref, name in sent.items())):
            raise SimulatorError("checkin-statuses", f"Statuses for {sorted(answered)}, expected one per command {sorted(sent)}")
        nonce = value(header_status, "s:Chal/s:Meta/m:NextNonce")
        if nonce:
            self.nonce = self.simulator.appsrv_nonce = nonce
        commands = []
        for element in elements:
            name = etree.QName(element).localname
            if name in SERVER_VERBS:
                items = element.findall("s:Item", _SML)
                if len(items) != 1:
                    raise SimulatorError("checkin-items", f"{name} {value(element, 's:CmdID')} has {len(items)} Items, expected one")
                target = value(items[0], "s:Target/s:LocURI")
                if target.startswith("/"):
                    raise SimulatorError("checkin-locuri", f"LocURI {target!r} starts with '/'")
                commands.append((name, value(element, "s:CmdID"), target, value(items[0], "s:Meta/m:Format"),
                                 value(items[0], "s:Data")))
        if body.find("s:Final", _SML) is None:
            raise SimulatorError("checkin-final", "the reply has no Final")
        return ServerMessage(int(msg_id), value(header_status, "s:Data"), [(r, c, d) for r, (c, d) in answered.items()], commands)

    def respond(self, message):
        """A Status for the SyncHdr and per command; a Results per successful Get."""
        body = [SML.Status(SML.CmdID("1"), SML.MsgRef(str(message.msg_id)), SML.CmdRef("0"), SML.Cmd("SyncHdr"),
                           SML.Data("200"))]
        cmd_id = 2
        for verb, ref, target, _format, data in message.commands:
            code = self.apply(verb, target, data)
            message.answers.append(code)
            body.append(SML.Status(SML.CmdID(str(cmd_id)), SML.MsgRef(str(message.msg_id)), SML.CmdRef(ref),
                                   SML.Cmd(verb), SML.Data(code)))
            cmd_id += 1
        for (verb, ref, target, _format, _data), code in zip(message.commands, message.answers):
            if verb == "Get" and code == "200":
                body.append(SML.Results(SML.CmdID(str(cmd_id)), SML.MsgRef(str(message.msg_id)), SML.CmdRef(ref),
                                        SML.Item(SML.Source(SML.LocURI(target)), SML.Meta(MET.Format("chr")),
                                                 SML.Data(self.node(target)))))
                cmd_id += 1
        return body

    def node(self, target):
        return self.simulator.nodes.get(target, self.tree.get(target))

    def skip_user_status_page(self):
        """DMClient FirstSyncStatus/SkipUserStatusPage as the device holds it: a device-only node, which a
        server may name with or without the ./Device/ scope (dmclient-csp)."""
        node = f"Vendor/MSFT/DMClient/Provider/{self.result.provisioning.provider_id}/FirstSyncStatus/SkipUserStatusPage"
        value = self.simulator.nodes.get(f"./Device/{node}", self.simulator.nodes.get(f"./{node}"))
        return (value or "").strip().lower() in ("true", "1")

    def second_user_signs_in(self):
        """A later user's first sign-in: on a device whose server set up the Enrollment Status Page (any
        FirstSyncStatus node), past the account-setup page only when the server set SkipUserStatusPage;
        otherwise Windows would sit at "Account setup: identifying" until the time-out."""
        configured = any("/FirstSyncStatus/" in node for node in self.simulator.nodes)
        if configured and not self.skip_user_status_page():
            raise SimulatorError("second-user", "a later user's first sign-in would wait at \"Account setup: "
                                                "identifying\" until the page's time-out: the server never set "
                                                "DMClient FirstSyncStatus/SkipUserStatusPage to true")
        self.simulator.second_user_page = "skipped"
        self.simulator.login_status = "user"

    def apply(self, verb, target, data):
        """What a Windows device does with one command, as its Status code (as a string)."""
        if target.startswith(USER_SCOPE) and self.simulator.sessions <= self.simulator.user_context_after:
            return COMMAND_NOT_ALLOWED  # the signed-in user's MDM context does not exist yet
        if verb == "Get":
            return "404" if self.node(target) is None else "200"
        if verb in ("Replace", "Add"):
            if target.endswith(IS_SYNC_DONE) and self.simulator.nodes.get(target) == "true":
                return "405"  # dmclient-csp: IsSyncDone cannot be set from true to true
            self.simulator.nodes[target] = data
            return "200"
        if verb == "Exec" and target.startswith(MSI_ROOT) and target.endswith(MSI_INSTALL_SUFFIX):
            # The install runs in the background; its Status node tells how it went.
            product = target[len(MSI_ROOT):-len(MSI_INSTALL_SUFFIX)]
            status = self.simulator.msi_run_status(product)
            self.simulator.nodes[f"{MSI_ROOT}{product}/Status"] = status
            failed = status not in ("70", MSI_PARKED_STATUS)
            self.simulator.nodes[f"{MSI_ROOT}{product}/LastError"] = "-2147023293" if failed else "0"
            return "202"
        if verb == "Delete":
            self.simulator.nodes.pop(target, None)
        return "200"

    def run(self):
        self.simulator.sessions += 1
        if self.simulator.second_user_at is not None and self.simulator.sessions == self.simulator.second_user_at:
            self.second_user_signs_in()
        body, sent = self.package1()
        content = self.post(body, with_credentials=self.digest)
        messages = []
        challenged = False
        while True:
            message = self.read(content, sent, expected_msg_id=len(messages) + 1)
            messages.append(message)
            if message.header_code in ("401", "407"):
                if challenged or not self.digest:
                    raise SimulatorError("checkin-auth", f"the server refused our credentials (SyncHdr {message.header_code})")
                challenged = True
                body, sent = self.package1()
                content = self.post(body, with_credentials=True)
                continue
            if message.header_code not in ("200", "212"):
                raise SimulatorError("checkin-auth", f"SyncHdr Status {message.header_code}")
            if not message.commands:
                return CheckinResult(self.session_id, "digest" if self.digest else "certificate", messages,
                                     wbxml_refused=self.wbxml_refused)
            if len(messages) >= MAX_SESSION_MESSAGES:
                raise SimulatorError("checkin-endless", f"the session did not end after {MAX_SESSION_MESSAGES} messages")
            body, sent = self.respond(message), {}
            # Without a client certificate every message carries a digest, made with the NextNonce of
            # the reply before (OMA DM 1.2 Security; MS-MDM "OMA DM protocol support": after a 200
            # with a Chal, Windows sends credentials again with the next nonce; only a 212 would
            # have let it stop).
            content = self.post(body, with_credentials=self.digest and message.header_code != "212")
