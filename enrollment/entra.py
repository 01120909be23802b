"""Microsoft Entra ID standard enrollment ("Microsoft Entra integration with MDM"): the Entra access token that Windows
sends to the terms-of-use page (Authorization: Bearer) and to GetPolicies and RST (a
BinarySecurityToken of ValueType urn:ietf:params:oauth:token-type:jwt), and the user it enrolls.

Token checks, all of them, in this order: RS256 only (alg from the header, and PyJWT told to accept
nothing else, so `none` and HS256-with-the-public-key fail twice); the key by `kid` from the
administrators' JWKS sets (unknown kid: refused and an alert for the administrators); signature;
`exp` and `nbf` with 5 minutes of leeway; `aud` among the configured audiences; `tid` among the
configured tenants; `iss` one of the two Entra issuers of that tenant; `scp` containing
mdm_delegation. Refusals carry a reason for the log and the audit, never the token.

A token enrolls one device. Windows presents the same token to GetPolicies and then RST, and again
when it retries a failed RST, so validation alone accepts it until it expires; the RST that enrolls
spends it (SpentEntraToken, written in the enrollment's transaction) and a later RST with it is
refused, unless the token itself names the device it enrolled (a re-enrollment of that PC within the
token's lifetime, which Windows' token cache makes likely; see same_device()). The token is known by its `jti`, else Entra's `uti` ("unique token identifier", Microsoft
identity platform access-token claims), else a hash of the whole token.

The terms-of-use page hands Windows an OpaqueBlob that comes back unchanged as the RST context item
EnrollmentData; we sign it and bind it to the user's tenant and object id.
"""
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from jwt import exceptions as jwt_errors

from accounts.models import AuditEvent
from mdmportal.rows import Columns

from . import auth, entra_keys, rst_sql
from .models import Device, EntraIdentity, EntraSettings, SpentEntraToken
from .soap import Fault, SoapFault

logger = logging.getLogger(__name__)

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ALGORITHM = "RS256"
LEEWAY_SECONDS = 5 * 60
REQUIRED_SCOPE = "mdm_delegation"
ISSUERS = ("https://sts.windows.net/{tid}/", "https://login.microsoftonline.com/{tid}/v2.0")
MAX_TOKEN_LENGTH = 16 * 1024
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TERMS_SALT = "enrollment.entra-terms"

BAD_TOKEN = "Your Entra ID sign-in was not accepted by this enrollment server. Contact your administrator."
NOT_ALLOWED = auth.NOT_ALLOWED
ALREADY_USED = ("This Entra ID sign-in has already enrolled a device. Start the enrollment again to sign in "
                "afresh.")
MAX_TOKEN_ID_CLAIM = 64
NO_BLOB = "null"  # EnrollmentData of a client that got no terms-of-use blob
# A tenant's users enroll for the first time by the thousand: the link's INSERT is written out once
# (mdmportal/rows.py).
_IDENTITY = Columns(EntraIdentity, "i")
# Every Entra RST looks its token up among the spent ones (check_request).
_SPENT = Columns(SpentEntraToken, "t")


class TokenRejected(Exception):
    """The token is not one we trust; `reason` is for the log and the audit (never the token)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EntraClaims:
    """What a verified token says about who is enrolling."""

    tenant_id: str
    object_id: str
    upn: str  # "" for user-less runs (self-deploying, pre-provisioning)
    name: str
    device_id: str  # the Entra device id; only in tokens issued after the Entra join
    token_id: str = ""  # what spends the token (jti:…, uti:… or sha256:…), see token_id()
    expires_at: datetime | None = None  # exp plus the leeway: when validation stops accepting the token

    @property
    def userless(self):
        return not self.upn


def enabled():
    """Entra enrollment switched on and fully configured (tenant, audience, keys)."""
    return EntraSettings.get().is_ready


def takes_address(email):
    """Whether discovery sends the account `email` (the Discover EmailAddress, may be empty) to Entra:
    Entra enrollment ready and the address one of the tenants' verified domains (EntraSettings.domains)."""
    config = EntraSettings.get()
    return config.is_ready and config.covers_address(email)


def validate(token):
    """The claims of a trusted Entra access token; raises TokenRejected."""
    config = EntraSettings.get()
    if not config.enabled:
        raise TokenRejected("Entra ID enrollment is switched off")
    if not config.tenant_ids or not config.audiences:
        raise TokenRejected("Entra ID settings lack a tenant or an audience")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("token missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt_errors.InvalidTokenError as exc:
        raise TokenRejected(f"not a JWT ({exc})") from None
    algorithm = header.get("alg")
    if algorithm != ALGORITHM:
        raise TokenRejected(f"alg {str(algorithm)[:20]!r} refused, RS256 only")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("no kid in the token header")
    key = entra_keys.find_key(kid)
    if key is None:
        if _claims_name_us(token, config):
            entra_keys.report_unknown_kid(kid)
        raise TokenRejected(f"unknown signing key kid={kid[:entra_keys.MAX_KID_LENGTH]!r}")
    claims = _decode(token, key, config)
    return _identity_claims(claims, config, token)


def _claims_name_us(token, config):
    """Do the token's unverified claims name one of our tenants and audiences? Only such tokens
    raise an unknown-key alert: anyone can send a token with a made-up kid, and random ones should
    not bury the real rotation alert."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt_errors.InvalidTokenError:
        return False
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    return (str(claims.get("tid", "")).lower() in config.tenant_ids
            and any(audience in config.accepted_audiences() for audience in audiences))


def _decode(token, key, config):
    try:
        return jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=config.accepted_audiences(), leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "iss", "aud", "tid", "oid"]},
        )
    except jwt_errors.ExpiredSignatureError:
        raise TokenRejected("token expired (exp)") from None
    except jwt_errors.ImmatureSignatureError:
        raise TokenRejected("token not yet valid (nbf/iat)") from None
    except jwt_errors.InvalidAudienceError:
        raise TokenRejected("audience (aud) not configured") from None
    except jwt_errors.MissingRequiredClaimError as exc:
        raise TokenRejected(f"claim {exc.claim!r} missing") from None
    except jwt_errors.InvalidSignatureError:
        raise TokenRejected("signature does not verify with the configured key") from None
    except jwt_errors.InvalidTokenError as exc:
        raise TokenRejected(f"invalid token ({type(exc).__name__}: {str(exc)[:100]})") from None


def token_id(token, claims):
    """The token's identity for spending it: its `jti`, else Entra's `uti`, else a SHA-256 of the
    token itself (the signature makes that unique too)."""
    for name in ("jti", "uti"):
        value = claims.get(name)
        if isinstance(value, str) and 0 < len(value) <= MAX_TOKEN_ID_CLAIM and value.isprintable():
            return f"{name}:{value}"
    return "sha256:" + hashlib.sha256(token.encode("ascii")).hexdigest()


def _identity_claims(claims, config, token):
    tenant = claims.get("tid")
    if not isinstance(tenant, str) or tenant.lower() not in config.tenant_ids:
        raise TokenRejected(f"tenant (tid) {str(tenant)[:64]!r} not configured")
    issuers = {template.format(tid=tenant) for template in ISSUERS}
    if claims.get("iss") not in issuers:
        raise TokenRejected(f"issuer (iss) {str(claims.get('iss'))[:120]!r} is not Entra's for the tenant")
    scopes = claims.get("scp")
    if not isinstance(scopes, str) or REQUIRED_SCOPE not in scopes.split():
        raise TokenRejected(f"scope (scp) lacks {REQUIRED_SCOPE}")
    object_id = claims.get("oid")
    if not isinstance(object_id, str) or not GUID.match(object_id.lower()):
        raise TokenRejected("object id (oid) is not a GUID")
    upn = next((claims[name] for name in ("upn", "unique_name", "preferred_username")
                if isinstance(claims.get(name), str) and claims[name].strip()), "").strip()
    if upn:
        if len(upn) > 254:  # the longest email address (RFC 5321), and Device.upn's column
            raise TokenRejected(f"user name of {len(upn)} characters")
        try:
            validate_email(upn)
        except ValidationError:
            raise TokenRejected(f"user name {upn[:100]!r} is not an email address") from None
    device_id = claims.get("deviceid", "")
    if not isinstance(device_id, str) or len(device_id) > 64 or not device_id.isprintable():
        raise TokenRejected("device id (deviceid) is not a usable name")
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    # PyJWT required exp and checked it is a number.
    expires_at = datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, UTC)
    return EntraClaims(tenant_id=tenant.lower(), object_id=object_id.lower(), upn=upn.lower(), name=name.strip()[:150],
                       device_id=device_id, token_id=token_id(token, claims), expires_at=expires_at)


def known_user(claims, *, for_update=False):
    """The portal user this Entra user already is (by link, else by email), or None; its `linked` says
    which. `for_update`: locked, for the enrollment's transaction."""
    return rst_sql.entra_user(claims.tenant_id, claims.object_id, "" if claims.userless else claims.upn,
                              for_update=for_update)


# --- enrollment (GetPolicies and RST) ---------------------------------------------------------------

def identity(binary_token):
    """auth.Identity for the JWT BinarySecurityToken of GetPolicies or RST; raises SoapFault."""
    raw = auth.decode_base64(binary_token.text or "")
    if not raw:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="Entra token is not base64")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="Entra token is not ASCII") from None
    try:
        claims = validate(token)
    except TokenRejected as exc:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=f"Entra token refused: {exc.reason}") from None
    user = known_user(claims)
    if user is not None and not user.is_active:
        raise SoapFault(Fault.AUTHORIZATION, NOT_ALLOWED, log_detail=f"inactive user {user.pk} (Entra)")
    return auth.Identity(user=user, method=auth.ENTRA, upn=claims.upn, entra=claims)


def check_request(claims, token_request):
    """What the RST adds to the token (MS-MDE2 AdditionalContext): a Device enrollment (Entra join) needs the
    token's device id, only Device enrollments may run without a user, and the terms-of-use blob,
    when present (see terms_blob_of), must be ours and this user's; and the token must not have
    enrolled a device already (spend_token() settles races inside the transaction). Raises SoapFault."""
    spent = _SPENT.first(connection, token_id=claims.token_id)
    if spent is not None and not same_device(spent, claims, token_request):
        raise SoapFault(Fault.AUTHENTICATION, ALREADY_USED, log_detail=(
            f"Entra token {claims.token_id} replayed: it enrolled device {spent.device_id or '(gone)'} "
            f"at {spent.spent_at:%Y-%m-%d %H:%M:%S}"))
    device = token_request.enrollment_type == Device.EnrollmentType.DEVICE
    if device and not claims.device_id:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="Entra Device enrollment without deviceid claim")
    if claims.userless and not device:
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail="Entra token without a user for a Full enrollment")
    blob = terms_blob_of(token_request)
    if blob:
        problem = terms_blob_problem(blob, claims)
        if problem:
            raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=f"EnrollmentData refused: {problem}")


def terms_blob_of(token_request):
    """The terms-of-use blob the RST carries as EnrollmentData, "" when it carries none. Windows sends
    the item with the literal value null, or empty, when no OpaqueBlob came back from a terms-of-use
    page (none configured in Entra, or none shown): that is no blob, exactly as an absent item, not a
    blob that fails verification. Anything else is a blob and is verified."""
    blob = token_request.item("EnrollmentData").strip()
    return "" if blob.lower() == NO_BLOB else blob


def same_device(spent, claims, token_request):
    """Whether a spent token may enroll again: Windows keeps an Entra access token for its lifetime
    (about an hour), so a user who unenrolls and enrolls the same PC again within it presents the
    spent token. What proves "the same PC" is the token's own `deviceid` claim (the Entra device the
    token was issued to), which must be the one recorded on the device the token enrolled; a token
    without one (an "add work or school account" before the PC is registered) names no PC and enrolls
    once. The DeviceID/HWDevID of the request are the client's claims: they only narrow the re-use to
    the device the token enrolled (of_hardware), they never grant it."""
    if spent.device_id is None or not claims.device_id:
        return False
    return Device.objects.of_hardware(token_request.device_id, token_request.hw_dev_id).filter(
        pk=spent.device_id, entra_device_id__iexact=claims.device_id).exists()


def spend_token(claims, token_request):
    """Mark the token spent, inside the enrollment's transaction (which a failure rolls back, leaving
    the token good for Windows' retry). A concurrent RST with the same token waits on the unique index
    here until the first one's transaction ends, then fails if that one enrolled another device.
    Returns the SpentEntraToken row (the enrollment records its device on it); raises SoapFault."""
    spent = SpentEntraToken(token_id=claims.token_id, expires_at=claims.expires_at)
    meta = SpentEntraToken._meta
    table, quote = meta.db_table, connection.ops.quote_name
    columns = [meta.get_field(name) for name in ("token_id", "expires_at", "spent_at")]
    # One statement, no savepoint: a row already there (or being written by a concurrent transaction,
    # which this one waits for) makes no row and no error.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table)} ({', '.join(quote(f.column) for f in columns)}) VALUES (%s, %s, %s) "
            f"ON CONFLICT ({quote(meta.get_field('token_id').column)}) DO NOTHING RETURNING {quote(meta.pk.column)}",
            [field.get_db_prep_save(getattr(spent, field.attname), connection) for field in columns])
        inserted = cursor.fetchone()
    if inserted is not None:
        spent.pk = inserted[0]
        spent._state.adding = False
        return spent
    spent = SpentEntraToken.objects.select_for_update().filter(token_id=claims.token_id).first()
    if spent is not None and same_device(spent, claims, token_request):
        return spent  # the same PC enrolling again with the token it enrolled with
    raise SoapFault(Fault.AUTHENTICATION, ALREADY_USED,
                    log_detail=f"Entra token {claims.token_id} spent by a concurrent enrollment")


def purge_spent_tokens(now=None):
    """Forget spent tokens that have expired (validation refuses them now); the number purged."""
    deleted, _by_model = SpentEntraToken.objects.expired(now).delete()
    return deleted


def enrollment_user(claims, *, ip=None):
    """(user, created): the user to enroll for, locked for the enrollment's transaction: the linked
    user, else the user with the token's email (then linked), else a new user made from the claims
    (created: True). (None, False) for a user-less Device enrollment. Raises SoapFault."""
    user = known_user(claims, for_update=True)
    created = False
    if user is None and claims.userless:
        return None, False
    if user is None:
        user = get_user_model().objects.create_user(claims.upn, display_name=claims.name)
        created = True
        AuditEvent.record(None, "user.created_from_entra", user, ip=ip, detail={
            "tenant_id": claims.tenant_id, "object_id": claims.object_id,
        })
    elif not user.linked and user.entra_identities.filter(tenant_id=claims.tenant_id).exists():
        # Same email, another Entra object of the same tenant (a deleted and re-created account?):
        # an administrator must decide, not the token.
        raise SoapFault(Fault.AUTHENTICATION, BAD_TOKEN, log_detail=(
            f"user {user.pk} is tied to another Entra object of tenant {claims.tenant_id}"))
    if created or not user.linked:
        _IDENTITY.insert(connection, [EntraIdentity(user=user, tenant_id=claims.tenant_id, object_id=claims.object_id)])
    if not user.is_active:
        raise SoapFault(Fault.AUTHORIZATION, NOT_ALLOWED, log_detail=f"inactive user {user.pk} (Entra)")
    return user, created


def certificate_name(identity, token_request):
    """Subject CN of the device certificate: the Entra device id for an Entra join (Device
    enrollment: the certificate names the Entra device), the DeviceID otherwise."""
    if identity.entra is not None and token_request.enrollment_type == Device.EnrollmentType.DEVICE:
        return identity.entra.device_id
    return token_request.device_id


# --- the terms-of-use OpaqueBlob ------------------------------------------------------------------

def issue_terms_blob(claims, client_request_id, joining):
    """The OpaqueBlob of an accepted terms-of-use page: signed by us, naming the user."""
    return signing.dumps({"tid": claims.tenant_id, "oid": claims.object_id, "rid": client_request_id,
                          "join": bool(joining)}, salt=TERMS_SALT, compress=True)


def terms_blob_problem(blob, claims):
    """Why the EnrollmentData blob is not acceptable for these claims, or "" when it is."""
    try:
        data = signing.loads(blob, salt=TERMS_SALT, max_age=settings.ENROLLMENT_ENTRA_TERMS_SECONDS)
    except signing.SignatureExpired:
        return "terms-of-use acceptance expired"
    except signing.BadSignature:
        return "not signed by this server"
    if not isinstance(data, dict) or data.get("tid") != claims.tenant_id or data.get("oid") != claims.object_id:
        return "accepted by another Entra user"
    return ""
