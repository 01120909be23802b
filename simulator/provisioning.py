"""The provisioning document of an enrollment (MS-MDE2 2.2.9.1) and the answer to a renewal (MS-MDE2
3.5), checked as strictly as Windows does: the certificate stores and chain, the client certificate,
APPLICATION (w7) with its APPAUTH blocks, DMClient and its poll schedule, the renewal schedule."""
import base64
import binascii
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .certificates import thumbprint
from .errors import SimulatorError
from .soap import parse_xml


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


# (certificate DER, issuer DER) of CA certificates found issued by that issuer (verify_directly_issued_by:
# the names, the signature algorithm, the signature), an answer that depends on those bytes alone. Every
# enrollment with one server is given the same Root and CA certificates: their signatures are checked
# once per process and pair of exact bytes, the client certificate's every time.
_VERIFIED_CA_PAIRS = set()
_VERIFIED_CA_PAIRS_KEPT = 64


def _verify_issued(cert, issuer, what, *, remember=False):
    """`cert` was issued by `issuer`; `remember` for CA certificates that many documents repeat."""
    der = serialization.Encoding.DER
    pair = (cert.public_bytes(der), issuer.public_bytes(der)) if remember else None
    if pair is not None and pair in _VERIFIED_CA_PAIRS:
        return
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SimulatorError("provisioning-chain", f"{what}: {exc or 'signature does not verify'}") from None
    if pair is not None:
        if len(_VERIFIED_CA_PAIRS) >= _VERIFIED_CA_PAIRS_KEPT:
            _VERIFIED_CA_PAIRS.clear()
        _VERIFIED_CA_PAIRS.add(pair)


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
    _verify_issued(root_cert, root_cert, "the root certificate is not self-signed", remember=True)
    _verify_issued(issuing, root_cert, "the issuing CA is not signed by the root", remember=True)
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
    _verify_issued(issuing, provisioning.root, "the issuing CA is not signed by the root we trust", remember=True)
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
