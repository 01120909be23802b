"""MS-WSTEP RequestSecurityToken (MS-MDE2 3.4): check the request, issue the device certificate, record
the enrollment and answer the provisioning document. All or nothing: a refused or failed enrollment
writes no device and spends nothing single-use (federated token, PIN, Entra token; its refusal is
audited), so Windows' retry with the same credentials still works; a successful one spends them."""
import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from lxml import etree
from lxml.builder import ElementMaker

from accounts.models import AuditEvent, Organisation
from invitations import sending
from mdmportal.rows import Columns
from pki import ca
from pki.csr import CsrError, parse_csr

from . import auth, entra, ppkg, provisioning_document, reenrollment, rst_retry, rst_sql, soap
from .models import Device, RegistrationPin
from .soap import AC_NS, ENROLLMENT_NS, PARSER, SOAP_NS, WSA_NS, WSSE_NS, WST_NS, WSU_NS, ErrorType, Fault, SoapFault

logger = logging.getLogger(__name__)

# Value URIs (MS-MDE2 3.4.4.1.1.1).
TOKEN_TYPE = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken"
ISSUE = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
RENEW = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew"
PKCS10 = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary"
PROVISIONING_DOC = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc"

T = ElementMaker(namespace=WST_NS, nsmap={None: WST_NS})
E = ElementMaker(namespace=ENROLLMENT_NS, nsmap={None: ENROLLMENT_NS})
O = ElementMaker(namespace=WSSE_NS, nsmap={"o": WSSE_NS})
U = ElementMaker(namespace=WSU_NS)

BAD_REQUEST = "The enrollment request is not valid."
BAD_CSR = "The device's certificate request was refused."


_enrolled_hooks = []
# The new device's row, some forty-five columns: its INSERT is written out once (mdmportal/rows.py), which
# costs a fraction of the ORM's compilation of it.
_DEVICE = Columns(Device, "d")


def register_enrolled(hook):
    """Add `hook(device, context_items)`, called once an enrollment is recorded, with the request's
    AdditionalContext items ([name, value] pairs). For apps built on this one (Autopilot recognises a
    device by its ZTD id or offline profile correlator), which enrollment must not import. A hook must
    not raise: the enrollment has succeeded."""
    if hook not in _enrolled_hooks:
        _enrolled_hooks.append(hook)


@dataclass
class TokenRequest:
    csr_der: bytes
    items: list = field(default_factory=list)  # [name, value] pairs, in order, repeats kept

    def item(self, name):
        """First value of a context item (names are case-sensitive), "" when absent."""
        return next((value for item_name, value in self.items if item_name == name), "")

    @property
    def device_id(self):
        return self.item("DeviceID")

    @property
    def hw_dev_id(self):
        return self.item("HWDevID")

    @property
    def enrollment_type(self):
        return self.item("EnrollmentType")

    @property
    def os_edition(self):
        value = self.item("OSEdition")
        return int(value) if value.isdigit() and len(value) < 10 else None


def parse_request(body):
    """The RST body -> TokenRequest; raises SoapFault for everything MS-MDE2 2.2.10 calls a MessageFormat error."""
    if etree.QName(body) != etree.QName(WST_NS, "RequestSecurityToken"):
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, log_detail=f"body element {body.tag}")
    token_type = soap.text(body, f"{{{WST_NS}}}TokenType")
    request_type = soap.text(body, f"{{{WST_NS}}}RequestType")
    if token_type != TOKEN_TYPE or request_type != ISSUE:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST,
                        log_detail=f"TokenType {token_type!r} RequestType {request_type!r}")
    token = body.find(f"{{{WSSE_NS}}}BinarySecurityToken")
    if token is None:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, log_detail="no BinarySecurityToken")
    value_type = soap.attribute(token, "ValueType", WSSE_NS)
    encoding = soap.attribute(token, "EncodingType", WSSE_NS)
    if value_type != PKCS10 or encoding not in ("", BASE64):
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST,
                        log_detail=f"BinarySecurityToken {value_type!r} {encoding!r}")
    csr_der = auth.decode_base64(token.text or "")
    if not csr_der:
        raise SoapFault(Fault.CERTIFICATE_REQUEST, BAD_CSR, log_detail="CSR is not base64")
    request = TokenRequest(csr_der=csr_der, items=context_items(body))
    check_items(request)
    return request


def context_items(body):
    context = body.find(f"{{{AC_NS}}}AdditionalContext")
    if context is None:
        return []
    return [[(item.get("Name") or "").strip(), soap.text(item, f"{{{AC_NS}}}Value")]
            for item in context.iterfind(f"{{{AC_NS}}}ContextItem")]


def check_items(request):
    device_id, enrollment_type = request.device_id, request.enrollment_type
    if not device_id or len(device_id) > 64 or not device_id.isprintable():
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, error_type=ErrorType.INVALID_ENROLLMENT_DATA,
                        log_detail=f"DeviceID {device_id[:80]!r}")
    if enrollment_type not in Device.EnrollmentType.values:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, error_type=ErrorType.INVALID_ENROLLMENT_DATA,
                        log_detail=f"EnrollmentType {enrollment_type[:80]!r}")
    if len(request.hw_dev_id) > 128:
        raise SoapFault(Fault.MESSAGE_FORMAT, BAD_REQUEST, error_type=ErrorType.INVALID_ENROLLMENT_DATA,
                        log_detail="HWDevID too long")


def parse_certificate_request(request):
    try:
        csr = parse_csr(request.csr_der)
    except CsrError as exc:
        raise SoapFault(Fault.CERTIFICATE_REQUEST, BAD_CSR, log_detail=f"CSR: {exc}") from None
    if csr.device_id and csr.device_id.lower() != request.device_id.lower():
        # Never decisive (never branch on values the device echoes), but worth a look.
        logger.warning("CSR DeviceID %s differs from context DeviceID %s", csr.device_id, request.device_id)
    return csr


def handle(request, envelope, key):
    token_request = parse_request(envelope.body)
    ip = request.META.get("REMOTE_ADDR") or None
    identity = again = None
    digest = rst_retry.request_digest(envelope)
    try:
        # The very same message as an enrollment answered moments ago: its answer was lost.
        again = rst_retry.answer_again(digest, token_request, ip=ip)
        if again is not None:
            device, document = again
        else:
            identity = auth.authenticate_envelope(request, envelope)
            if identity.entra is not None:
                entra.check_request(identity.entra, token_request)
            csr = parse_certificate_request(token_request)
            device, document = enroll(identity, token_request, csr, ip=ip, request_digest=digest)
    except SoapFault as fault:
        # The refusal itself is audited by enrollment/troubleshooting.py (soap.serve), on the user who
        # signed in when there is one.
        request.enrollment_identity = identity
        if isinstance(fault, reenrollment.ReplacementRefused):
            # On the device too, so that its history shows who tried to take it over.
            AuditEvent.record(None, "device.replacement_refused", fault.device, ip=ip, detail={
                "match": fault.match, "owner": fault.device.user_id,
                "claimed_by": fault.user.pk if fault.user else None, "method": identity.method,
                "upn": identity.upn, "reason": fault.log_detail,
            })
        raise
    if again is None:
        for hook in _enrolled_hooks:
            hook(device, token_request.items)
    logger.info("enrollment: %s device %s (%s) %s for user %s", envelope.activity_id, device.pk,
                device.device_id, "answered again" if again else "enrolled", device.user_id or "-")
    return response_envelope(envelope, document)


def enroll(identity, token_request, csr, *, ip=None, request_digest=""):
    """Record the enrollment and return (device, provisioning document bytes); raises SoapFault.
    `request_digest`: rst_retry.request_digest of the message, kept to answer it again."""
    try:
        # The enrollment's audit events (up to four) go in one INSERT, in its transaction.
        with transaction.atomic(), AuditEvent.batched():
            return _enroll(identity, token_request, csr, ip, request_digest)
    except IntegrityError as exc:
        if identity.token_id:
            # Two RSTs raced with the same federated token: the second one lost.
            raise SoapFault(Fault.AUTHENTICATION, auth.BAD_TOKEN, log_detail=f"token spent concurrently: {exc}") from None
        raise SoapFault(Fault.ENROLLMENT_SERVER, "The enrollment server could not record the device. Try again.",
                        log_detail=f"integrity: {exc}") from None


def _enrolling_user(identity, ip):
    """(user, created): the user, locked: locking serialises this user's enrollments, so the device limit
    holds under races. An Entra user is created on first enrollment (created: True); a user-less Entra
    run has none. A provisioning package's owner is not locked: the package's devices count against
    the package's own maximum (ppkg.claim_slot locks the package), never the owner's device limit."""
    if identity.entra is not None:
        return entra.enrollment_user(identity.entra, ip=ip)
    if identity.pin_enrollment is not None:
        return identity.user, False
    return get_user_model().objects.select_for_update().get(pk=identity.user.pk), False


def _enroll(identity, token_request, csr, ip, request_digest=""):
    # First, so that a concurrent RST with the same Entra token waits here, before any other work.
    spent_token = entra.spend_token(identity.entra, token_request) if identity.entra is not None else None
    user, created = _enrolling_user(identity, ip)
    earlier = rst_sql.live_devices_of_hardware_for_update(token_request.device_id, token_request.hw_dev_id)
    # The ids found them; only what this enrollment proves lets it replace them.
    grounds = reenrollment.check(earlier, user=user, identity=identity, pin_enrollment=identity.pin_enrollment,
                                 token_request=token_request)
    # A provisioning package counts against its own maximum, not its owner's device limit.
    pin_enrollment = ppkg.claim_slot(identity.pin_enrollment, earlier) if identity.pin_enrollment else None
    # The user's device limit and first-device mark concern a user's own enrollments: a package's
    # devices (counted by claim_slot) need neither query.
    by_user = user is not None and pin_enrollment is None
    # Counted the other way round too: the devices a package enrolled for its owner are the package's
    # (its maximum), so they never use up the owner's own device limit.
    first_device = False
    if by_user:
        # One query for both: the live devices the limit counts, and whether this is the user's first
        # device. None for a user made from an Entra token a moment ago.
        counts = {"live": 0, "any": 0} if created else Device.objects.filter(
            user=user, pin_enrollment__isnull=True).aggregate(
            live=Count("pk", filter=Q(status=Device.Status.ENROLLED) & ~Q(pk__in=[d.pk for d in earlier])),
            any=Count("pk"))
        live = counts["live"]
        if live >= user.device_limit:
            raise SoapFault(Fault.AUTHORIZATION, "You have reached your device limit. Remove a device or ask your "
                            "administrator to raise the limit.", error_type=ErrorType.DEVICE_CAP_REACHED,
                            log_detail=f"user {user.pk} has {live} of {user.device_limit} devices")
        # A user made a moment ago has no invitation to complete.
        first_device = counts["any"] == 0 and not created
    pin = None
    if identity.pin is not None:
        # The PIN is spent by this enrollment; a concurrent RST with the same PIN waits here, then fails.
        pin = RegistrationPin.objects.select_for_update().get(pk=identity.pin.pk)
        if not pin.is_usable:
            raise SoapFault(Fault.AUTHENTICATION, auth.BAD_PIN, log_detail=f"PIN {pin.pk} no longer usable")

    certificate, document = issue(identity, token_request, csr)
    appauth = digest_material(document, token_request.device_id)
    device = Device(
        device_id=token_request.device_id,
        hw_dev_id=token_request.hw_dev_id,
        name=token_request.item("DeviceName")[:255],
        os_version=token_request.item("OSVersion")[:64],
        os_edition=token_request.os_edition,
        kind=Device.kind_for_edition(token_request.os_edition),
        enrollment_type=token_request.enrollment_type,
        method=identity.method,
        user=user,
        upn=identity.upn[:254],
        certificate_serial=ca.serial_hex(certificate),
        certificate_thumbprint=ca.thumbprint(certificate),
        certificate_not_after=certificate.not_valid_after_utc,
        context_items=token_request.items,
        federated_token_id=identity.token_id,
        enrollment_request_digest=request_digest,
        pin_enrollment=pin_enrollment,
        entra_device_id=identity.entra.device_id if identity.entra is not None else "",
        **appauth,
    )
    _DEVICE.insert(connection, [device])
    if spent_token is not None:
        spent_token.device = device
        spent_token.save(update_fields=["device"])
    if pin_enrollment is not None:
        ppkg.record_device(pin_enrollment, device, ip=ip)
    if pin is not None:
        pin.consume(device)
        AuditEvent.record(user, "registration_pin.used", user, ip=ip, detail={"pin": pin.pk, "device": device.pk,
                                                                       "method": identity.method})
    for old in earlier:
        old.mark_replaced(device)  # a release for re-enrollment is spent here: the device is no longer live
        AuditEvent.record(None, "device.replaced", old, ip=ip, detail={
            "by": device.pk, "match": reenrollment.match_of(old, device.device_id), "grounds": grounds[old.pk],
            "old_user": old.user_id, "new_user": user.pk if user else None,
            "old_certificate": old.certificate_serial,
            "released_by": old.released_for_reenrollment_by_id if old.is_released_for_reenrollment else None,
        })
    AuditEvent.record(user, "device.enrolled", device, ip=ip, detail={
        "device_id": device.device_id, "method": device.method, "type": device.enrollment_type,
        "kind": device.kind, "certificate": device.certificate_serial,
    })
    if first_device:
        sending.mark_enrollment_completed(user)
    return device, document


def is_renewal(body):
    """Is this RST a renewal (RequestType Renew, MS-MDE2 3.5; served by enrollment/renewal.py)?"""
    return (etree.QName(body) == etree.QName(WST_NS, "RequestSecurityToken")
            and soap.text(body, f"{{{WST_NS}}}RequestType") == RENEW)


def issue_certificate(public_key, common_name):
    """A device certificate and the active (root, issuing) chain; CA trouble becomes the right fault."""
    try:
        authorities = ca.active_authorities()  # one read for the signature and the chain sent with it
        certificate = ca.issue_device_certificate(public_key, common_name, authorities=authorities)
        root, issuing = ca.active_chain(authorities)
    except ca.CaNotInitialised:
        raise SoapFault(Fault.ENROLLMENT_SERVER, "The enrollment server is not set up yet. Contact your "
                        "administrator.", log_detail="CA not initialised") from None
    except ca.CaError as exc:
        raise SoapFault(Fault.ENROLLMENT_SERVER, "The enrollment server could not issue a certificate. "
                        "Contact your administrator.", log_detail=f"CA: {exc}") from None
    except ValueError as exc:
        raise SoapFault(Fault.CERTIFICATE_REQUEST, BAD_CSR, log_detail=f"issue: {exc}") from None
    return certificate, root, issuing


def issue(identity, token_request, csr):
    common_name = entra.certificate_name(identity, token_request)
    certificate, root, issuing = issue_certificate(csr.public_key, common_name)
    document = enrollment_document(certificate, root, issuing, token_request, upn=identity.upn)
    return certificate, document


def enrollment_document(certificate, root, issuing, token_request, *, upn):
    """The provisioning document of an enrollment (MS-MDE2 2.2.9.1), with fresh APPAUTH secrets."""
    organisation = Organisation.get()
    return provisioning_document.build_document(
        root=root, issuing=issuing, device_cert=certificate,
        enrollment_type=token_request.enrollment_type,
        device_id=token_request.device_id,
        upn=upn,
        device_name=token_request.item("DeviceName"),
        provider_id=settings.ENROLLMENT_PROVIDER_ID,
        management_url=organisation.base_url + settings.ENROLLMENT_MANAGEMENT_PATH,
        client_secret=secrets.token_urlsafe(24),
        server_secret=secrets.token_urlsafe(24),
        renew_period_days=settings.ENROLLMENT_RENEW_PERIOD_DAYS,
        retry_interval_days=settings.ENROLLMENT_RENEW_RETRY_DAYS,
    )


def digest_material(document, device_id):
    """What the OMA-DM digest check needs from the two APPAUTH blocks we just wrote (see Device):
    H = b64(md5("name:secret")) and the first nonce, per direction. The clear secrets are not kept."""
    root = etree.fromstring(document, PARSER)
    found = {}
    for block in root.iter("characteristic"):
        if block.get("type") != "APPAUTH":
            continue
        parms = {parm.get("name"): parm.get("value") or "" for parm in block.findall("parm")}
        level = parms.get("AAUTHLEVEL")
        name = parms.get("AAUTHNAME") or (device_id if level == "APPSRV" else settings.ENROLLMENT_PROVIDER_ID)
        digest = base64.b64encode(hashlib.md5(f"{name}:{parms.get('AAUTHSECRET', '')}".encode()).digest()).decode()
        found[level] = (digest, parms.get("AAUTHDATA", ""))
    if set(found) != {"APPSRV", "CLIENT"}:
        raise ValueError("provisioning document lacks an APPAUTH block")
    return {
        "appsrv_digest": found["APPSRV"][0], "appsrv_nonce": found["APPSRV"][1],
        "client_digest": found["CLIENT"][0], "client_nonce": found["CLIENT"][1],
    }


def _utc(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def response_envelope(envelope, document):
    """The RequestSecurityTokenResponseCollection (MS-WSTEP 3.1.4.1.2.6, as MS-MDE2 3.4 profiles it)."""
    now = datetime.now(UTC)
    must_understand = {f"{{{SOAP_NS}}}mustUnderstand": "1"}
    security = O.Security(
        U.Timestamp(U.Created(_utc(now - timedelta(minutes=5))), U.Expires(_utc(now + timedelta(minutes=5))),
                    **{f"{{{WSU_NS}}}Id": "_0"}),
        **must_understand,
    )
    header = soap.S.Header(
        soap.A.Action(soap.REQUEST_TOKEN_RESPONSE, **must_understand),
        soap.A.RelatesTo(envelope.message_id),
        security,
    )
    wsse_token = etree.Element(f"{{{WSSE_NS}}}BinarySecurityToken", nsmap={None: WSSE_NS},
                               ValueType=PROVISIONING_DOC, EncodingType=BASE64)
    wsse_token.text = base64.b64encode(document).decode("ascii")
    body = soap.S.Body(T.RequestSecurityTokenResponseCollection(T.RequestSecurityTokenResponse(
        T.TokenType(TOKEN_TYPE),
        E.DispositionMessage(),
        T.RequestedSecurityToken(wsse_token),
        E.RequestID("0"),
    )))
    root = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS, "a": WSA_NS, "u": WSU_NS})
    root.extend([header, body])
    return root
