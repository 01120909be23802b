"""Who is enrolling: the WS-Security header of GetPolicies and RST (MS-MDE2 3.3, 3.4): the
on-premise UsernameToken, our federated sign-in token (MS-MDE2 3.2), or an Entra ID token, checked in
enrollment/entra.py.

The secret in an on-premise UsernameToken is the account password or a one-time registration PIN, as
the user's registration settings say (accounts/registration.py). Users who need both a PIN and the
password enroll through our sign-in page instead (see enrollment/discovery.py).

A successful on-premise enrollment costs one hash: GetPolicies verifies the secret and remembers that
(a short-lived cache entry keyed by an HMAC of the user's id, stored hash and the secret), so the RST
that follows does not hash again. Every check goes through django-axes (accounts/lockout.py).
"""
import base64
import binascii
import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core import signing
from django.core.cache import cache
from django.utils.translation import gettext_noop

from accounts import lockout
from accounts.models import AuditEvent, AuthPolicy, Organisation
from accounts.registration import effective_registration_settings

from .soap import WSSE_NS, Fault, SoapFault, attribute, text

logger = logging.getLogger(__name__)

PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
USER_TOKEN = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentUserToken"
JWT = "urn:ietf:params:oauth:token-type:jwt"

ONPREMISE = AuthPolicy.ONPREMISE.value
FEDERATED = AuthPolicy.FEDERATED.value
PIN = "pin"
ENTRA = "entra"

TOKEN_SALT = "enrollment.federated-token"
# No account's name is longer than an email address can be (RFC 5321 §4.5.3.1.3: a path of 256 octets
# with its angle brackets). A longer one is refused where it is read, before it reaches a column (axes'
# AccessAttempt.username, the lockout's account) that PostgreSQL would refuse with an error.
MAX_USERNAME = 254

# The reasons Windows shows in its enrollment error (the SOAP fault's text, in English) and the federated
# sign-in page shows in the visitor's language (marked here, translated where the page renders them).
BAD_CREDENTIALS = gettext_noop("The user name or password is incorrect.")
LOCKED_OUT = gettext_noop("Too many failed sign-ins. This account is locked for a while: try again later.")
BAD_PIN = gettext_noop("The user name or registration PIN is incorrect, or the PIN has expired or was already used.")
BAD_PIN_OR_PASSWORD = gettext_noop("The user name, password or registration PIN is incorrect, or the PIN has "
                                   "expired or was already used.")
NOT_ALLOWED = gettext_noop("This account is not allowed to enroll devices. Contact your administrator.")
BAD_TOKEN = gettext_noop("Your sign-in has expired or was already used. Start the enrollment again.")
WRONG_METHOD = gettext_noop("This server does not accept that sign-in method.")
NEEDS_SIGN_IN_PAGE = gettext_noop("Your account enrolls with a registration PIN and your password, which Windows "
                                  "asks for on the organisation's sign-in page. Start the enrollment again from the "
                                  "beginning.")


@dataclass
class Identity:
    user: object  # None for an Entra user not yet in the portal, or a user-less Entra run
    method: str  # ONPREMISE, PIN, FEDERATED or ENTRA (Device.Method values)
    upn: str  # the name the device signed in with
    token_id: str | None = None  # jti of a federated token, spent by a successful RST
    pin: object = None  # the RegistrationPin used, spent by a successful RST
    pin_enrollment: object = None  # the PinEnrollment of a provisioning package (enrollment/ppkg.py)
    entra: object = None  # entra.EntraClaims of a verified Entra token


def authenticate_envelope(request, envelope):
    """The enrolling user, from the envelope's security header; raises SoapFault."""
    security = envelope.security()
    if security is None:
        raise SoapFault(Fault.AUTHENTICATION, "Sign-in information is missing.", log_detail="no wsse:Security")
    username_token = security.find(f"{{{WSSE_NS}}}UsernameToken")
    binary_token = security.find(f"{{{WSSE_NS}}}BinarySecurityToken")
    organisation = Organisation.get()
    if username_token is not None:
        identity = _package_identity(request, username_token)
        if identity is not None:
            return identity
        if organisation.auth_policy != ONPREMISE:
            raise SoapFault(Fault.AUTHENTICATION, WRONG_METHOD,
                            log_detail=f"UsernameToken while the policy is {organisation.auth_policy}")
        return _password_identity(request, username_token)
    value_type = attribute(binary_token, "ValueType", WSSE_NS) if binary_token is not None else ""
    if value_type == USER_TOKEN:
        return _token_identity(binary_token, organisation)
    if value_type == JWT:
        from . import entra

        return entra.identity(binary_token)
    raise SoapFault(Fault.INVALID_SECURITY, "The sign-in information could not be read.",
                    log_detail="no UsernameToken, UserToken nor JWT in wsse:Security")


def _package_identity(request, token):
    """A provisioning package's identity when the UsernameToken names a PIN enrollment, else None.
    Packages sign in on-premise whatever the organisation's policy (their UPN and PIN are the
    UsernameToken: Provisioning CSP, Enrollments)."""
    from . import ppkg

    username, secret = read_username_token(token)
    pin_enrollment = ppkg.find(username, request)
    return ppkg.authenticate(request, pin_enrollment, secret) if pin_enrollment is not None else None


def _password_identity(request, token):
    username, secret = read_username_token(token)
    user = get_user_model().objects.for_login(username)
    # MS-MDE2 3.4.4.1.1.1.3: Windows' on-premise box carries one secret, the password or the PIN per the mode.
    policy = effective_registration_settings(user)
    if policy.needs_sign_in_page:
        raise SoapFault(Fault.AUTHORIZATION, NEEDS_SIGN_IN_PAGE,
                        log_detail=f"UsernameToken for {'unknown user' if user is None else f'user {user.pk}'} "
                                   "whose mode is PIN and password")
    if policy.requires_pin:
        user, pin = verify_pin(request, username, secret)
        return Identity(user=user, method=PIN, upn=username, pin=pin)
    user = verify_password(request, username, secret)
    return Identity(user=user, method=ONPREMISE, upn=username)


def read_username_token(token):
    """(Username, secret) of a wsse:UsernameToken (MS-MDE2 3.4.4.1.1.1.3); raises SoapFault."""
    username = text(token, f"{{{WSSE_NS}}}Username")
    password_element = token.find(f"{{{WSSE_NS}}}Password")
    if not username or password_element is None:
        raise SoapFault(Fault.INVALID_SECURITY, "The sign-in information could not be read.",
                        log_detail="UsernameToken without Username or Password")
    password_type = attribute(password_element, "Type", WSSE_NS)
    if password_type and password_type != PASSWORD_TEXT:
        raise SoapFault(Fault.INVALID_SECURITY, "The sign-in information could not be read.",
                        log_detail=f"password type {password_type!r}")
    if len(username) > MAX_USERNAME:
        # No such account: a wrong sign-in, counted by nothing (there is no account to count against).
        raise SoapFault(Fault.AUTHENTICATION, BAD_CREDENTIALS, log_detail=f"user name of {len(username)} characters")
    # The secret itself is never stripped: spaces may be part of a password.
    return username, password_element.text or ""


def verify_password(request, identity, password, *, complete=True):
    """The active user whose email or MDM username is `identity` and whose password this is.
    Goes through django-axes (lockout per account and address); raises SoapFault. `complete=False`
    when the password is not all the user must prove (PIN and password)."""
    user = get_user_model().objects.for_login(identity)
    account = user.email if user else identity
    _refuse_locked(request, account)
    if user is not None and _recently_verified(user, password, user.password):
        _require_active(user)
        return user
    authenticated, locked_out = authenticate_with_lockout(request, account, password)
    if locked_out:
        raise SoapFault(Fault.AUTHENTICATION, LOCKED_OUT, log_detail="locked out by django-axes")
    if authenticated is None:
        # ModelBackend refuses inactive users without telling why; the device deserves "not allowed"
        # only when the password was right.
        if user is not None and not user.is_active and user.check_password(password):
            _require_active(user)
        raise SoapFault(Fault.AUTHENTICATION, BAD_CREDENTIALS,
                        log_detail="unknown user" if user is None else f"bad password for user {user.pk}")
    if complete:
        lockout.reset_after_success(request, account)
    _remember_verified(authenticated, password, authenticated.password, True)
    return authenticated


def verify_pin(request, identity, secret, *, complete=True):
    """(user, RegistrationPin) for a user's usable one-time PIN, through django-axes like passwords.
    `complete=False` when the PIN is not all the user must prove (PIN and password)."""
    from .models import RegistrationPin
    from .pins import matching_pin

    user = get_user_model().objects.for_login(identity)
    account = user.email if user else identity
    _refuse_locked(request, account)
    pin = RegistrationPin.objects.usable().filter(user=user).first() if user is not None else None
    if pin is not None and _recently_verified(user, secret, pin.pin_hash) == pin.pk:
        _require_active(user)
        return user, pin
    authenticated, locked_out = authenticate_with_lockout(request, account, secret, kind="pin")
    if locked_out:
        raise SoapFault(Fault.AUTHENTICATION, LOCKED_OUT, log_detail="locked out by django-axes")
    if authenticated is None:
        if user is not None:
            if not user.is_active and matching_pin(user, secret) is not None:
                _require_active(user)
            AuditEvent.record_refusal("registration_pin.failed", user, ip=request.META.get("REMOTE_ADDR") or None,
                                      reason=request.path[:200], detail={"path": request.path[:200]})
        raise SoapFault(Fault.AUTHENTICATION, BAD_PIN,
                        log_detail="unknown user" if user is None else f"bad or spent PIN for user {user.pk}")
    pin = authenticated.registration_pin
    if complete:
        lockout.reset_after_success(request, account)
    _remember_verified(authenticated, secret, pin.pin_hash, pin.pk)
    return authenticated, pin


def _refuse_locked(request, account):
    # Before anything that could tell a right secret from a wrong one (the cache of verified secrets).
    if lockout.is_locked(request, account):
        raise SoapFault(Fault.AUTHENTICATION, LOCKED_OUT, log_detail=f"account {account!r} locked out")


def _require_active(user):
    if not user.is_active:
        raise SoapFault(Fault.AUTHORIZATION, NOT_ALLOWED, log_detail=f"inactive user {user.pk}")


def authenticate_with_lockout(request, email, secret, *, kind="password"):
    """django.contrib.auth.authenticate through django-axes, with a password or (kind="pin") a
    registration PIN. Returns (user or None, locked_out).

    Axes marks a locked-out request so that its middleware swaps the response for the HTML lockout
    page; devices need a SOAP fault and the sign-in page its own message, so we take the flag back."""
    user = authenticate(request, username=email, **{kind: secret})
    locked_out = bool(getattr(request, "axes_locked_out", False))
    request.axes_locked_out = False
    return (None if locked_out else user), locked_out


def _verification_key(user, secret, stored_hash):
    # The stored hash is part of the message, so a password change (or a new PIN) invalidates the
    # entry at once; the secret itself is never stored.
    message = f"{user.pk}:{stored_hash}:{secret}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
    return f"enrollment:verified:{digest}"


def _remember_verified(user, secret, stored_hash, value):
    cache.set(_verification_key(user, secret, stored_hash), value, settings.ENROLLMENT_PASSWORD_CACHE_SECONDS)


def _recently_verified(user, secret, stored_hash):
    return cache.get(_verification_key(user, secret, stored_hash))


# Federated sign-in token (MS-MDE2 3.2): opaque to Windows, signed by us, short-lived, and spent by the
# RST that enrolls with it (the jti is stored on the Device row, unique). When the sign-in page checked a
# registration PIN, the token names it, and the RST consumes it.

def issue_token(user, pin=None):
    data = {"u": user.pk, "jti": uuid.uuid4().hex}
    if pin is not None:
        data["p"] = pin.pk
    return signing.dumps(data, salt=TOKEN_SALT, compress=False)


def read_token(token):
    """(user id, jti, PIN id or None) of a token we issued and that has not expired; raises SoapFault."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.ENROLLMENT_FEDERATED_TOKEN_SECONDS)
        pin_id = data.get("p")
        return int(data["u"]), str(data["jti"]), int(pin_id) if pin_id is not None else None
    except signing.SignatureExpired:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="federated token expired") from None
    except (signing.BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="federated token invalid") from None


def decode_base64(value):
    """Lenient base64: standard or URL-safe alphabet, with or without padding, whitespace ignored."""
    compact = "".join(value.split())
    compact += "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact)
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _federated_for_entra():
    """While Entra enrollment is on, discovery answers Federated (enrollment/discovery.py) and sends
    devices that are not Entra-joined to our sign-in page, whose token is then accepted."""
    from . import entra

    return entra.enabled()


def _token_identity(binary_token, organisation):
    from .models import Device, RegistrationPin

    raw = decode_base64(binary_token.text or "")
    if not raw:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="federated token is not base64")
    try:
        token = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="federated token is not ASCII") from None
    user_id, token_id, pin_id = read_token(token)
    if Device.objects.filter(federated_token_id=token_id).exists():
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=f"federated token {token_id} replayed")
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=f"token of deleted user {user_id}")
    policy = effective_registration_settings(user)
    # An on-premise organisation still takes tokens from users who need the sign-in page (PIN and
    # password), and from everyone while Entra enrollment makes discovery answer Federated.
    if organisation.auth_policy != FEDERATED and not policy.needs_sign_in_page and not _federated_for_entra():
        raise SoapFault(Fault.AUTHENTICATION, WRONG_METHOD,
                        log_detail=f"federated token while the policy is {organisation.auth_policy}")
    if not user.is_active:
        raise SoapFault(Fault.AUTHORIZATION, NOT_ALLOWED, log_detail=f"inactive user {user.pk}")
    pin = None
    if pin_id is not None:
        pin = RegistrationPin.objects.usable().filter(pk=pin_id, user=user).first()
        if pin is None:
            raise SoapFault(Fault.AUTHENTICATION, BAD_PIN, log_detail=f"token's PIN {pin_id} no longer usable")
    elif policy.requires_pin:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=f"token without PIN for PIN user {user.pk}")
    return Identity(user=user, method=FEDERATED, upn=user.email, token_id=token_id, pin=pin)
