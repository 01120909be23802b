"""Enrollment troubleshooting: every refused enrollment attempt is recorded with the user and device it
claims, and shown to the helpdesk with the error code Windows showed, the cause in plain words and
what to do.

Recording: every SOAP fault of discovery, GetPolicies and the enrollment request goes through
soap.serve, which calls `record_refusal` (the services' `on_fault`). The attempt is an audit event
"enrollment.refused" whose detail names the step, the fault, the message Windows showed, the
account and DeviceID the request claims and the trace id (the TraceId of the fault, which Windows
writes to its event log). An attempt whose sign-in was checked is a plain audit event on its user;
one that never signed in is a refusal, coalesced per address and minute like every unauthenticated
refusal (AuditEvent.record_refusal), on the user it claims when such a user exists.

Windows' error codes: the HRESULT the client reports for each SOAP fault subcode, and for each
DeviceEnrollmentServiceError ErrorType (which, when present, is the code shown), from Microsoft's
"Mobile device enrollment" page (windows/client-management/mdm), section "Enrollment error messages"
(MENROLL_E_* values of MDMRegistration.h).
"""
import base64
import json
import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core import signing
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts import lockout
from accounts.models import AuditEvent

from . import auth, entra, ppkg, reenrollment
from .soap import AC_NS, DISCOVERY_NAMESPACES, WSSE_NS, ErrorType, Fault, attribute, text

logger = logging.getLogger(__name__)

REFUSED = "enrollment.refused"
# The events a troubleshooting page lists: refused SOAP requests, refused sign-ins on our federated
# sign-in page, account lockouts (every later attempt is refused until they end), and a device's
# refused take-over by another enrollment.
USER_ACTIONS = [REFUSED, "enrollment.signin_failed", lockout.LOCKED_OUT_ACTION]
DEVICE_ACTIONS = [REFUSED, "device.replacement_refused"]
LISTED = 50

# Subcode -> HRESULT ("Mobile device enrollment", Enrollment error messages, first table).
FAULT_CODES = {
    Fault.MESSAGE_FORMAT: "0x80180001",
    Fault.AUTHENTICATION: "0x80180002",
    Fault.AUTHORIZATION: "0x80180003",
    Fault.CERTIFICATE_REQUEST: "0x80180004",
    Fault.ENROLLMENT_SERVER: "0x80180005",
    Fault.INTERNAL: "0x80180006",
    Fault.INVALID_SECURITY: "0x80180007",
}
# ErrorType -> HRESULT (same page, second table: the deviceenrollmentserviceerror element).
ERROR_TYPE_CODES = {
    ErrorType.DEVICE_CAP_REACHED: "0x80180013",
    ErrorType.DEVICE_NOT_SUPPORTED: "0x80180014",
    ErrorType.NOT_SUPPORTED: "0x80180015",
    ErrorType.NOT_ELIGIBLE_TO_RENEW: "0x80180016",
    ErrorType.IN_MAINTENANCE: "0x80180017",
    ErrorType.USER_LICENSE: "0x80180018",
    ErrorType.INVALID_ENROLLMENT_DATA: "0x80180019",
}
# What each code means, as that page describes it.
CODE_MEANINGS = {
    "0x80180001": _("The request was not understood (MENROLL_E_DEVICE_MESSAGE_FORMAT_ERROR)."),
    "0x80180002": _("The user was not recognised (MENROLL_E_DEVICE_AUTHENTICATION_ERROR)."),
    "0x80180003": _("The user is not allowed to enroll (MENROLL_E_DEVICE_AUTHORIZATION_ERROR)."),
    "0x80180004": _("The certificate could not be issued (MENROLL_E_DEVICE_CERTIFCATEREQUEST_ERROR)."),
    "0x80180005": _("Error on the enrollment server (MENROLL_E_DEVICE_CONFIGMGRSERVER_ERROR)."),
    "0x80180006": _("The server hit an unexpected problem (MENROLL_E_DEVICE_INTERNALSERVICE_ERROR)."),
    "0x80180007": _("The sign-in information could not be read (MENROLL_E_DEVICE_INVALIDSECURITY_ERROR)."),
    "0x80180013": _("The user has enrolled too many devices (MENROLL_E_DEVICECAPREACHED)."),
    "0x80180014": _("This device or Windows version is not supported (MENROLL_E_DEVICENOTSUPPORTED)."),
    "0x80180015": _("Device management is not supported for this request (MENROLL_E_NOTSUPPORTED)."),
    "0x80180016": _("The device may not renew its enrollment (MENROLL_E_NOTELIGIBLETORENEW)."),
    "0x80180017": _("The account is in maintenance (MENROLL_E_INMAINTENANCE)."),
    "0x80180018": _("The user's licence blocks the enrollment (MENROLL_E_USERLICENSE)."),
    "0x80180019": _("The server refused the enrollment data (MENROLL_E_ENROLLMENTDATAINVALID)."),
}


def windows_code(fault, error_type=""):
    """The error code Windows shows for a fault: the ErrorType's when it has one, else the subcode's."""
    return ERROR_TYPE_CODES.get(error_type or "") or FAULT_CODES.get(fault or "", "")


# The cause in plain words and what to do, by the message the device was given (the services' own
# constants), then by code.
CAUSES = [
    ((auth.BAD_CREDENTIALS,),
     _("Wrong user name or password, or no account has that name."),
     _("Check the name typed in Windows (the email or the MDM username shown on the user's page). If the user "
       "forgot the password, send a password reset from the user's page.")),
    ((auth.LOCKED_OUT,),
     _("Too many failed sign-ins: the account is locked for a while."),
     _("Wait for the lockout to end or clear it on the Lockouts page, then have the user try again with the "
       "right password.")),
    ((auth.BAD_PIN, auth.BAD_PIN_OR_PASSWORD),
     _("The registration PIN is wrong, has expired or was already used (or the password is wrong)."),
     _("The user requests a new PIN on their enrollment page (/go), or resend the invitation: its email "
       "carries a new PIN.")),
    ((auth.NOT_ALLOWED,),
     _("The account is deactivated."),
     _("Reactivate the account on the user's page if the user should enroll devices.")),
    ((auth.BAD_TOKEN,),
     _("The sign-in of this enrollment expired or was already used (it is valid a few minutes, once)."),
     _("Start the enrollment again from the beginning in Settings › Accounts › Access work or school.")),
    ((auth.WRONG_METHOD,),
     _("The device signed in another way than the organisation's sign-in method (it changed during the "
       "enrollment, or the device was set up for another server)."),
     _("Start the enrollment again; check the sign-in method on the Organisation page.")),
    ((auth.NEEDS_SIGN_IN_PAGE,),
     _("The user enrolls with a registration PIN and a password, which are typed on the organisation's sign-in "
       "page, but this device signed in with Windows' own box."),
     _("Start the enrollment again from Settings › Accounts › Access work or school, so that Windows opens the "
       "sign-in page.")),
    (("retired enrollment key",),
     _("The device used an old enrollment address: the enrollment URL was regenerated since."),
     _("Send the user a new invitation (or have them open /go): it gives the current address.")),
    ((entra.BAD_TOKEN,),
     _("The Microsoft Entra ID sign-in was not accepted (wrong tenant, expired or unverifiable token, or Entra "
       "enrollment is not set up)."),
     _("Check the Entra ID settings (tenant, keys) and that the device is joined to that tenant; the trace id "
       "leads to the exact reason in the server log.")),
    ((entra.ALREADY_USED,),
     _("This Entra ID sign-in was already used to enroll a device."),
     _("Start the enrollment again so that Windows signs in afresh.")),
    ((ppkg.BAD_PIN, ppkg.LOCKED_OUT, ppkg.ADDRESS_LOCKED_OUT, ppkg.NO_LONGER_VALID, ppkg.CAP_REACHED,
      ppkg.OWNER_INACTIVE),
     _("The provisioning package was refused (wrong PIN, locked, expired, revoked or full)."),
     _("Open the provisioning package's page: it shows its state, and can unlock it or give it a new PIN.")),
    ((str(reenrollment.NOT_YOURS),),
     _("This hardware is enrolled by another user."),
     _("If the device changed hands, release it for re-enrollment on its page, then have the new user enroll "
       "again.")),
]
CODE_CAUSES = {
    "0x80180013": (_("The user has reached their device limit."),
                   _("Raise the device limit on the user's page, or retire a device the user no longer uses.")),
    "0x80180014": (_("This device or Windows edition cannot enroll this way (for example, it did not offer the "
                     "sign-in method the server needs)."),
                   _("Check the organisation's sign-in method and the user's registration settings; enroll from "
                     "Settings › Accounts › Access work or school on Windows 10 or 11.")),
    "0x80180015": (_("The device did not offer the sign-in method the server needs."),
                   _("Check the organisation's sign-in method; enroll from Settings › Accounts › Access work or "
                     "school.")),
    "0x80180005": (_("The enrollment server could not complete the enrollment (certificate authority not set up, "
                     "database or cache unavailable)."),
                   _("Run “manage.py doctor” on the server and look up the trace id in the server log; the user "
                     "tries again once it is fixed.")),
    "0x80180006": (_("The enrollment server hit an unexpected error."),
                   _("Look up the trace id in the server log; the user tries again later.")),
}
DEFAULT_CAUSE = (_("The device's request was refused: see the server's reason below."),
                 _("Look up the trace id in the server log. If the device sent something the server could not "
                   "read, check that it runs a supported Windows 10 or 11 version."))


def cause_of(message, code, reason=""):
    """(cause, advice) of a refusal: by the message the device was shown, or the server's reason."""
    for messages, cause, advice in CAUSES:
        if message in messages or reason in messages:
            return cause, advice
    return CODE_CAUSES.get(code, DEFAULT_CAUSE)


# What a refused request claims.

@dataclass
class Claim:
    account: str = ""  # the name the request signs in with (or the email of discovery)
    user_id: int | None = None  # a federated token names its user by id
    device_id: str = ""


def claim_of(envelope):
    """The account and DeviceID a request claims, read from the envelope without trusting it (nothing
    here is verified: it only says whom an attempt concerns). Never raises."""
    found = Claim()
    if envelope is None:
        return found
    try:
        _read_claim(envelope, found)
    except Exception:  # noqa: BLE001 - a malformed request claims nothing; its refusal is still recorded
        logger.debug("could not read the claim of a refused request", exc_info=True)
    return found


def _read_claim(envelope, found):
    body = envelope.body
    namespace = body.tag.split("}")[0].lstrip("{") if body is not None and body.tag.startswith("{") else ""
    if namespace in DISCOVERY_NAMESPACES:
        found.account = text(body, f"{{{namespace}}}request/{{{namespace}}}EmailAddress")
    context = body.find(f".//{{{AC_NS}}}AdditionalContext") if body is not None else None
    if context is not None:
        for item in context.iterfind(f"{{{AC_NS}}}ContextItem"):
            if (item.get("Name") or "").strip() == "DeviceID":
                found.device_id = text(item, f"{{{AC_NS}}}Value")[:64]
                break
    security = envelope.security()
    if security is None:
        return
    username = security.find(f"{{{WSSE_NS}}}UsernameToken")
    if username is not None:
        found.account = text(username, f"{{{WSSE_NS}}}Username")
        return
    token = security.find(f"{{{WSSE_NS}}}BinarySecurityToken")
    if token is None:
        return
    raw = auth.decode_base64(token.text or "") or b""
    value_type = attribute(token, "ValueType", WSSE_NS)
    if value_type == auth.USER_TOKEN:
        # Our own signed token: its user, even when it has expired.
        try:
            found.user_id = int(signing.loads(raw.decode("ascii"), salt=auth.TOKEN_SALT)["u"])
        except (signing.BadSignature, KeyError, TypeError, ValueError, UnicodeDecodeError):
            pass
    elif value_type == auth.JWT:
        # An Entra token's user, as the token says (not verified here).
        parts = raw.decode("ascii", "replace").strip().split(".")
        if len(parts) == 3:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            found.account = str(payload.get("upn") or payload.get("unique_name") or "")


def claimed_user(claim):
    User = get_user_model()
    if claim.user_id is not None:
        return User.objects.filter(pk=claim.user_id).first()
    account = claim.account.strip()
    if not account or len(account) > auth.MAX_USERNAME:
        return None
    return User.objects.for_login(account)


def record_refusal(request, service_name, envelope, fault, trace_id):
    """Soap `on_fault` of the enrollment services: audit the refused attempt (see the module's text).
    Renewals are audited by enrollment/renewal.py. Never raises: the device gets its fault anyway."""
    try:
        from . import wstep

        if envelope is not None and service_name == "enrollment" and wstep.is_renewal(envelope.body):
            return
        identity = getattr(request, "enrollment_identity", None)
        claim = claim_of(envelope)
        user = identity.user if identity is not None and identity.user is not None else claimed_user(claim)
        detail = {
            "step": service_name, "fault": fault.subcode, "error_type": fault.error_type or "",
            "code": windows_code(fault.subcode, fault.error_type), "message": fault.reason[:500],
            "reason": (fault.log_detail or fault.reason)[:500], "account": claim.account[:254],
            "device_id": claim.device_id, "trace_id": trace_id, "signed_in": identity is not None,
        }
        ip = request.META.get("REMOTE_ADDR") or None
        if identity is not None:
            AuditEvent.record(None, REFUSED, user, ip=ip, detail=detail)
        else:
            AuditEvent.record_refusal(REFUSED, user, ip=ip, reason=f"{service_name}: {detail['reason']}",
                                      detail=detail)
    except Exception:  # noqa: BLE001 - the database may be the very reason of the fault
        logger.warning("refused %s request not audited", service_name, exc_info=True)


# Reading them back.

@dataclass
class Attempt:
    event: AuditEvent
    code: str
    meaning: str
    cause: str
    advice: str

    @property
    def detail(self):
        return self.event.detail or {}

    @property
    def step(self):
        """The request refused, in words (the detail keeps the service's name)."""
        step = self.detail.get("step", "")
        return STEP_NAMES.get(step, step)


# The three requests of an enrollment (MS-MDE2 3.1, 3.3 and 3.4), by the service names the detail keeps.
STEP_NAMES = {
    "discovery": _("Discovery (Discover)"),
    "policy": _("Certificate policies (GetPolicies)"),
    "enrollment": _("Certificate request (RequestSecurityToken)"),
}


def describe(event):
    detail = event.detail or {}
    if event.action == lockout.LOCKED_OUT_ACTION:
        return Attempt(event, "0x80180002", CODE_MEANINGS["0x80180002"],
                       _("Too many failed sign-ins: the account is locked for a while."),
                       _("Wait for the lockout to end or clear it on the Lockouts page."))
    if event.action == "enrollment.signin_failed":
        return Attempt(event, "", "", _("Refused on the organisation's sign-in page (wrong password or PIN)."),
                       _("The page told the user what was wrong; if the PIN expired, the user requests a new one "
                         "on their enrollment page."))
    if event.action == "device.replacement_refused":
        return Attempt(event, "0x80180003", CODE_MEANINGS["0x80180003"], *cause_of(str(reenrollment.NOT_YOURS), ""))
    code = detail.get("code") or windows_code(detail.get("fault"), detail.get("error_type"))
    return Attempt(event, code, CODE_MEANINGS.get(code, ""),
                   *cause_of(detail.get("message", ""), code, detail.get("reason", "")))


def attempts_for_user(user, limit=LISTED):
    events = AuditEvent.objects.filter(target_type=user._meta.label, target_id=str(user.pk),
                                       action__in=USER_ACTIONS).order_by("-created_at", "-pk")[:limit]
    return [describe(event) for event in events]


def attempts_for_device(device, limit=LISTED):
    """Refused enrollments that named this device's DeviceID, and refused take-overs of it."""
    mine = Q(action=REFUSED, detail__device_id__iexact=device.device_id) | Q(
        action="device.replacement_refused", target_type=device._meta.label, target_id=str(device.pk))
    events = AuditEvent.objects.filter(action__in=DEVICE_ACTIONS).filter(mine).order_by("-created_at", "-pk")[:limit]
    return [describe(event) for event in events]
