"""The wap-provisioningdoc returned (base64) in the enrollment response: MS-MDE2
2.2.9.1, CertificateStore, w7 APPLICATION and DMClient configuration service providers.

Only three kinds of top-level characteristic appear, in this order: CertificateStore (root under
Root/System, issuing CA under CA/System, then the device certificate under My/User or My/System,
as Intune emits them: some clients take certificates by position, and the ROBO renewal schedule
under My/WSTEP/Renew), APPLICATION and DMClient. A renewal's document holds only the
CertificateStore and APPLICATION/PROVIDER-ID ("Certificate Renewal" page).
Every value goes through lxml, which escapes it; nothing is concatenated into XML.
"""
import base64
import secrets
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree
from lxml.builder import ElementMaker

from pki.ca import certificate_of, thumbprint
from pki.models import CertificateAuthority

ENROLLMENT_TYPES = {"Full": "User", "Device": "System"}  # EnrollmentType -> My/<store>
DEFAULT_ENCODING = "application/vnd.syncml.dm+xml"

# Retry and back-off of the DM client (w7 APPLICATION CSP): six retries, 30 s doubling up to 2 min.
CONNECTION = {"CONNRETRYFREQ": "6", "INITIALBACKOFFTIME": "30000", "MAXBACKOFFTIME": "120000"}
# Poll schedule in minutes (DMClient CSP Poll node): 8 x 15 min, 5 x 60 min, then every 8 h forever.
# Offline, polling is the only wake-up; a 1-minute infinite poll caused CSP re-application storms.
POLL_SCHEDULE = [
    ("NumberOfFirstRetries", "8", "integer"),
    ("IntervalForFirstSetOfRetries", "15", "integer"),
    ("NumberOfSecondRetries", "5", "integer"),
    ("IntervalForSecondSetOfRetries", "60", "integer"),
    ("NumberOfRemainingScheduledRetries", "0", "integer"),  # 0 = forever
    ("IntervalForRemainingScheduledRetries", "480", "integer"),
    ("PollOnLogin", "true", "boolean"),
    ("AllUsersPollOnFirstLogin", "true", "boolean"),
]

E = ElementMaker()


def build_document(*, root, issuing, device_cert: x509.Certificate, enrollment_type: str, device_id: str,
                   upn: str, device_name: str, provider_id: str, management_url: str,
                   client_secret: str, server_secret: str, renew_period_days: int, retry_interval_days: int) -> bytes:
    """The provisioning document as UTF-8 bytes (no XML declaration), ready to base64 into the RSTR.

    `root` and `issuing` are certificates (or CertificateAuthority rows); `enrollment_type` is the
    RST context item (`Full` or `Device`); `client_secret`/`server_secret` are the CLIENT/APPSRV
    APPAUTH secrets the caller keeps for the SyncML digest fallback. The AAUTHDATA nonces are fresh
    random values: a Windows 11 (26200) enrollment failed without them. `renew_period_days` and
    `retry_interval_days` are the ROBO renewal schedule (CertificateStore CSP My/WSTEP/Renew)."""
    if enrollment_type not in ENROLLMENT_TYPES:
        raise ValueError(f"unknown enrollment type {enrollment_type!r}")
    for name, value in (("device_id", device_id), ("provider_id", provider_id), ("management_url", management_url),
                        ("client_secret", client_secret), ("server_secret", server_secret)):
        if not value:
            raise ValueError(f"{name} is required")
    if not 1 <= retry_interval_days <= renew_period_days <= 1000:
        # CertificateStore CSP: both 1-1000 days and RetryInterval <= RenewPeriod, else the device errors.
        raise ValueError("the renewal schedule needs 1 <= retry_interval_days <= renew_period_days <= 1000")
    store = ENROLLMENT_TYPES[enrollment_type]
    renewal = _renewal_schedule(renew_period_days, retry_interval_days)
    doc = E("wap-provisioningdoc", {"version": "1.1"},
            _certificate_store(_certificate(root), _certificate(issuing), device_cert, store, renewal),
            _application(device_cert, store, device_id, provider_id, management_url, client_secret, server_secret),
            _dmclient(enrollment_type, device_id, upn, device_name, provider_id))
    return etree.tostring(doc, encoding="utf-8", xml_declaration=False)


def build_renewal_document(*, root, issuing, device_cert: x509.Certificate, enrollment_type: str,
                           provider_id: str) -> bytes:
    """The document answering a ROBO renewal (MS-MDE2 3.5, Microsoft's "Certificate Renewal" page): the
    new certificate in the store it enrolled into, with the chain, and APPLICATION/PROVIDER-ID naming
    the enrollment it belongs to. Nothing else: the account, its secrets and the schedule stay."""
    if enrollment_type not in ENROLLMENT_TYPES:
        raise ValueError(f"unknown enrollment type {enrollment_type!r}")
    if not provider_id:
        raise ValueError("provider_id is required")
    store = ENROLLMENT_TYPES[enrollment_type]
    doc = E("wap-provisioningdoc", {"version": "1.1"},
            _certificate_store(_certificate(root), _certificate(issuing), device_cert, store),
            _characteristic("APPLICATION", _parm("PROVIDER-ID", provider_id)))
    return etree.tostring(doc, encoding="utf-8", xml_declaration=False)


def _certificate_store(root, issuing, device_cert, store, renewal=None):
    # WSTEP sits beside User/System under My (CertificateStore CSP: ./Vendor/MSFT/CertificateStore/My/WSTEP).
    my = _characteristic("My", _characteristic(store, _encoded(device_cert), _characteristic("PrivateKeyContainer")))
    if renewal is not None:
        my.append(renewal)
    return _characteristic(
        "CertificateStore",
        _characteristic("Root", _characteristic("System", _encoded(root))),
        _characteristic("CA", _characteristic("System", _encoded(issuing))),
        my,
    )


def _renewal_schedule(renew_period_days, retry_interval_days):
    """My/WSTEP/Renew (CertificateStore CSP): we serve ROBO renewals (enrollment/renewal.py); Windows starts
    RenewPeriod days before expiry and retries every RetryInterval days. An on-premise enrollment
    would otherwise renew by prompting the user for a password, which we do not serve."""
    return _characteristic(
        "WSTEP",
        _characteristic(
            "Renew",
            _parm("ROBOSupport", "true", "boolean"),
            _parm("RenewPeriod", str(renew_period_days), "integer"),
            _parm("RetryInterval", str(retry_interval_days), "integer"),
        ),
    )


def _application(device_cert, store, device_id, provider_id, management_url, client_secret, server_secret):
    return _characteristic(
        "APPLICATION",
        _parm("APPID", "w7"),
        _parm("PROVIDER-ID", provider_id),  # must equal the DMClient provider node name
        _parm("NAME", provider_id),
        _parm("ADDR", management_url),
        *(_parm(name, value) for name, value in CONNECTION.items()),
        E.parm(name="BACKCOMPATRETRYDISABLED"),  # valueless on purpose
        _parm("DEFAULTENCODING", DEFAULT_ENCODING),
        _parm("SSLCLIENTCERTSEARCHCRITERIA", _search_criteria(device_cert, store)),
        _characteristic(
            "APPAUTH",
            _parm("AAUTHLEVEL", "CLIENT"), _parm("AAUTHTYPE", "DIGEST"),
            _parm("AAUTHSECRET", client_secret), _parm("AAUTHDATA", _nonce()),
        ),
        _characteristic(
            "APPAUTH",
            _parm("AAUTHLEVEL", "APPSRV"), _parm("AAUTHTYPE", "DIGEST"), _parm("AAUTHNAME", device_id),
            _parm("AAUTHSECRET", server_secret), _parm("AAUTHDATA", _nonce()),
        ),
    )


def _dmclient(enrollment_type, device_id, upn, device_name, provider_id):
    parms = [_parm("EntDMID", device_id, "string")]
    if device_name:
        parms.append(_parm("EntDeviceName", device_name, "string"))
    if enrollment_type == "Full" and upn:
        parms.append(_parm("UPN", upn, "string"))
    poll = _characteristic("Poll", *(_parm(name, value, datatype) for name, value, datatype in POLL_SCHEDULE))
    return _characteristic("DMClient", _characteristic("Provider", _characteristic(provider_id, *parms, poll)))


def _search_criteria(device_cert, store):
    """`Subject=CN%3D<cn>&Stores=My%5C<store>`: the DN URL-escaped; lxml writes `&` as `&amp;`."""
    common_name = device_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    subject = quote(f"CN={common_name}", safe="")
    stores = quote(f"My\\{store}", safe="")
    return f"Subject={subject}&Stores={stores}"


def _encoded(cert):
    der = cert.public_bytes(serialization.Encoding.DER)
    return _characteristic(thumbprint(cert), _parm("EncodedCertificate", base64.b64encode(der).decode("ascii")))


def _certificate(value) -> x509.Certificate:
    return certificate_of(value) if isinstance(value, CertificateAuthority) else value


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def _characteristic(type_, *children):
    return E.characteristic({"type": type_}, *children)


def _parm(name, value, datatype=None):
    attributes = {"name": name, "value": value}
    if datatype:
        attributes["datatype"] = datatype
    return E.parm(attributes)
