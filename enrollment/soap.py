"""SOAP 1.2 plumbing shared by the enrollment services: the locked-down parser, reply and fault builders,
and the one view every device endpoint goes through (MS-MDE2 2.2, 2.2.10)."""
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpResponse
from lxml import etree
from lxml.builder import ElementMaker

from mdmportal.unavailable import DEPENDENCY_DOWN

logger = logging.getLogger(__name__)

# Namespaces (MS-MDE2 2.2.1).
SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA_NS = "http://www.w3.org/2005/08/addressing"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST_NS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
AC_NS = "http://schemas.xmlsoap.org/ws/2006/12/authorization"
DISCOVERY_NS = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"
# Microsoft's documentation writes the discovery namespace with a trailing slash, devices without.
DISCOVERY_NAMESPACES = (DISCOVERY_NS, DISCOVERY_NS + "/")
XCEP_NS = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
ENROLLMENT_NS = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
DIAG_NS = "http://schemas.microsoft.com/2004/09/ServiceModel/Diagnostics"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

# Actions, request -> response (MS-MDE2 3.1.4.1, 3.3, 3.4 WSDL).
DISCOVER = DISCOVERY_NS + "/IDiscoveryService/Discover"
DISCOVER_RESPONSE = DISCOVERY_NS + "/IDiscoveryService/DiscoverResponse"
GET_POLICIES = XCEP_NS + "/IPolicy/GetPolicies"
GET_POLICIES_RESPONSE = XCEP_NS + "/IPolicy/GetPoliciesResponse"
REQUEST_TOKEN = ENROLLMENT_NS + "/RST/wstep"
REQUEST_TOKEN_RESPONSE = ENROLLMENT_NS + "/RSTRC/wstep"

CONTENT_TYPE = "application/soap+xml; charset=utf-8"

S = ElementMaker(namespace=SOAP_NS, nsmap={"s": SOAP_NS, "a": WSA_NS})
A = ElementMaker(namespace=WSA_NS)
DIAG = ElementMaker(namespace=DIAG_NS, nsmap={None: DIAG_NS})
ERR = ElementMaker(namespace=ENROLLMENT_NS, nsmap={None: ENROLLMENT_NS})

# No DTD, no entity expansion, no network, no huge trees: a DOCTYPE is refused before parsing anyway.
PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
    huge_tree=False, remove_comments=True, remove_pis=True,
)


class Fault:
    """Subcodes of MS-MDE2 2.2.10 (client HRESULT in the comment). All are prefixed QNames whose prefixes
    the reply envelope declares."""

    MESSAGE_FORMAT = "s:MessageFormat"  # 0x80180001 malformed, wrong action/token
    AUTHENTICATION = "s:Authentication"  # 0x80180002 unknown user, bad secret/token
    AUTHORIZATION = "s:Authorization"  # 0x80180003 not allowed
    CERTIFICATE_REQUEST = "s:CertificateRequest"  # 0x80180004 bad CSR, signing failure
    ENROLLMENT_SERVER = "s:EnrollmentServer"  # 0x80180005 our server error
    INTERNAL = "a:InternalServiceFault"  # 0x80180006 unexpected
    INVALID_SECURITY = "a:InvalidSecurity"  # 0x80180007 unparsable security header


class ErrorType:
    """Optional DeviceEnrollmentServiceError/ErrorType values, in Intune's casing (MS-MDE2 2.2.10)."""

    DEVICE_CAP_REACHED = "DeviceCapReached"
    DEVICE_NOT_SUPPORTED = "DeviceNotSupported"
    NOT_SUPPORTED = "NotSupported"
    NOT_ELIGIBLE_TO_RENEW = "NotEligibleToRenew"
    IN_MAINTENANCE = "InMaintenance"
    USER_LICENSE = "UserLicense"
    INVALID_ENROLLMENT_DATA = "InvalidEnrollmentData"
    CUSTOM_SERVER_ERROR = "CustomServerError"


class SoapFault(Exception):
    """Raised anywhere in a service to answer the device with a fault. `reason` is shown to the user
    by Windows and must never contain secrets; `log_detail` goes to the log only."""

    def __init__(self, subcode, reason, *, error_type=None, log_detail=""):
        super().__init__(reason)
        self.subcode, self.reason, self.error_type, self.log_detail = subcode, reason, error_type, log_detail


# While the database (or the cache) is down: our server's error, which Windows reports as 0x80180005
# with this message; the user can simply try again.
UNAVAILABLE = "The enrollment server is temporarily unavailable. Try again in a few minutes."


def unavailable_fault(exception):
    return SoapFault(Fault.ENROLLMENT_SERVER, UNAVAILABLE,
                     log_detail=f"dependency unavailable: {type(exception).__name__}: {str(exception).strip()[:300]}")


class BodyTooLarge(Exception):
    pass


@dataclass
class Envelope:
    root: etree._Element
    header: etree._Element | None
    body: etree._Element | None  # the first element inside s:Body
    action: str
    message_id: str
    soap_ns: str = SOAP_NS
    activity_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def security(self):
        """The wsse:Security header, or None."""
        if self.header is None:
            return None
        return self.header.find(f"{{{WSSE_NS}}}Security")


def text(element, path=None, namespaces=None):
    """Stripped text of `element` (or of its child at `path`); "" when absent."""
    if element is not None and path is not None:
        element = element.find(path, namespaces)
    if element is None or element.text is None:
        return ""
    return element.text.strip()


def attribute(element, name, namespace):
    """An attribute written either plain (`Type`) or qualified (`wsse:Type`): devices and Microsoft's
    samples qualify it where WS-Security writes it plain (MS-MDE2 4.3.1.4)."""
    value = element.get(name)
    if value is None:
        value = element.get(f"{{{namespace}}}{name}")
    return (value or "").strip()


def read_body(request):
    """The request body, refusing anything over ENROLLMENT_MAX_BODY_BYTES (declared or actual)."""
    limit = settings.ENROLLMENT_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BodyTooLarge(declared)
    data = request.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(len(data))
    return data


def parse_envelope(data):
    """Parse a SOAP 1.2 (or 1.1) envelope. Raises SoapFault(MessageFormat) on anything malformed."""
    if not data.strip():
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request is empty.", log_detail="empty body")
    # A DOCTYPE has no business in SOAP (SOAP 1.2 part 1 §5): refuse it rather than trust the parser
    # with entities (XXE, billion laughs).
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request is not valid XML.", log_detail="DOCTYPE or ENTITY")
    try:
        root = etree.fromstring(data, PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request is not valid XML.", log_detail=f"XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request is not valid XML.", log_detail="DOCTYPE")
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP_NS, SOAP11_NS):
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request is not a SOAP envelope.",
                        log_detail=f"root element {root.tag}")
    ns = qname.namespace
    header = root.find(f"{{{ns}}}Header")
    body = root.find(f"{{{ns}}}Body")
    if body is None or len(body) == 0:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The request has no SOAP body.", log_detail="no Body")
    return Envelope(
        root=root, header=header, body=body[0], soap_ns=ns,
        action=text(header, f"{{{WSA_NS}}}Action"),
        message_id=text(header, f"{{{WSA_NS}}}MessageID"),
    )


def _activity_id(activity_id):
    return DIAG.ActivityId(activity_id, CorrelationId=activity_id)


def reply_header(action, envelope, *, activity=False):
    """Action (mustUnderstand), optional ActivityId, RelatesTo = the request's MessageID verbatim."""
    header = S.Header(A.Action(action, **{f"{{{SOAP_NS}}}mustUnderstand": "1"}))
    if activity:
        header.append(_activity_id(envelope.activity_id))
    header.append(A.RelatesTo(envelope.message_id if envelope else ""))
    return header


def soap_body(*children):
    """s:Body declaring xsi and xsd, as Windows' own samples do."""
    body = etree.Element(f"{{{SOAP_NS}}}Body", nsmap={"xsi": XSI_NS, "xsd": XSD_NS})
    body.extend(children)
    return body


def soap_response(envelope_element, status=200):
    payload = etree.tostring(envelope_element, xml_declaration=False, encoding="utf-8")
    response = HttpResponse(payload, content_type=CONTENT_TYPE, status=status)
    # Windows wants a plain, non-chunked answer (a chunked reply fails the enrollment).
    response["Content-Length"] = str(len(payload))
    return response


def fault_response(fault, envelope, response_action, activity_id):
    """The fault of MS-MDE2 2.2.10. Sent with HTTP 200, as Fleet does in production: SOAP 1.2 allows 500,
    but whether Windows then shows our message is unconfirmed."""
    detail = [ERR.DeviceEnrollmentServiceError(
        *([ERR.ErrorType(fault.error_type)] if fault.error_type else []),
        ERR.Message(fault.reason),
        ERR.TraceId(activity_id),
    )]
    header = S.Header(
        A.Action(response_action, **{f"{{{SOAP_NS}}}mustUnderstand": "1"}),
        _activity_id(activity_id),
        A.RelatesTo(envelope.message_id if envelope else ""),
    )
    body = S.Body(S.Fault(
        S.Code(S.Value("s:Receiver"), S.Subcode(S.Value(fault.subcode))),
        S.Reason(S.Text(fault.reason, **{"{http://www.w3.org/XML/1998/namespace}lang": "en-US"})),
        S.Detail(*detail),
    ))
    return soap_response(S.Envelope(header, body))


@dataclass
class Service:
    """One device endpoint: the action it accepts, the action it answers with, and its handler
    `handle(request, envelope, key) -> lxml Envelope element` (raises SoapFault)."""

    name: str
    action: str
    response_action: str
    handle: Callable
    # on_fault(request, name, envelope or None, SoapFault, trace id): told of every fault answered
    # (enrollment/troubleshooting.py records the refused attempt); must not raise.
    on_fault: Callable | None = None


def serve(request, service, key):
    """The one failure path of every SOAP endpoint: parse, check the action, run the handler; any
    failure becomes the right fault and a logged reason, never a 500 (413 for oversize bodies)."""
    envelope = None
    activity_id = str(uuid.uuid4())
    try:
        data = read_body(request)
        envelope = parse_envelope(data)
        envelope.activity_id = activity_id
        if envelope.action != service.action:
            raise SoapFault(Fault.MESSAGE_FORMAT, "This service does not support that request.",
                            log_detail=f"action {envelope.action!r}")
        return soap_response(service.handle(request, envelope, key))
    except BodyTooLarge as exc:
        logger.info("%s: body of %s bytes refused", service.name, exc.args[0])
        return HttpResponse("Request body too large.\n", status=413, content_type="text/plain; charset=utf-8")
    except SoapFault as fault:
        logger.info("%s fault %s (%s) activity=%s: %s", service.name, fault.subcode, fault.error_type or "-",
                    activity_id, fault.log_detail or fault.reason)
        if service.on_fault is not None:
            service.on_fault(request, service.name, envelope, fault, activity_id)
        return fault_response(fault, envelope, service.response_action, activity_id)
    except DEPENDENCY_DOWN as exc:
        fault = unavailable_fault(exc)
        logger.warning("%s fault %s activity=%s: %s", service.name, fault.subcode, activity_id, fault.log_detail)
        return fault_response(fault, envelope, service.response_action, activity_id)
    except Exception:
        logger.exception("%s: unexpected error, activity=%s", service.name, activity_id)
        fault = SoapFault(Fault.INTERNAL, "The enrollment server had an unexpected problem. Try again later.")
        if service.on_fault is not None:
            service.on_fault(request, service.name, envelope, fault, activity_id)
        return fault_response(fault, envelope, service.response_action, activity_id)


def unavailable_response(request, service, exception):
    """The fault for a failure outside `serve` (the view's own lookups), answering the request's
    MessageID when its body can still be read."""
    try:
        envelope = parse_envelope(read_body(request))
    except (SoapFault, BodyTooLarge, OSError):
        envelope = None
    return fault_response(unavailable_fault(exception), envelope, service.response_action, str(uuid.uuid4()))
