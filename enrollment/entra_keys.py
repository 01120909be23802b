"""Entra ID token-signing keys (JWK sets, RFC 7517, as Entra publishes them): JWKS documents imported by
administrators, and the lookup of a key by `kid` across the active sets.

Microsoft publishes the keys at https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys. The
portal runs offline, so an administrator uploads a copy or points us at a mirror on the local
network; every import is kept with its date and source, and an import that brings a key we have been
asked for resolves the matching unknown-key alerts.
"""
import functools
import hashlib
import http.client
import json
import logging
import urllib.error
import urllib.request

import jwt
from django.db import connection, transaction
from django.utils.translation import gettext as _
from jwt.exceptions import PyJWTError

from accounts.models import AuditEvent
from mdmportal import outbound

from .models import ACTIVE_KEY_IDS, EntraKeyAlert, JwksSet, mirror_url_error

logger = logging.getLogger(__name__)

MICROSOFT_KEYS = "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"


def keys_url(tenant_id):
    """Where Microsoft publishes the signing keys of the tenant, or a placeholder where the tenant id goes
    when it is not entered yet (plain text: escape it in HTML)."""
    return MICROSOFT_KEYS.format(tenant=tenant_id or _("<tenant id>"))


MAX_JWKS_BYTES = 256 * 1024  # Microsoft's set is a few kilobytes
FETCH_TIMEOUT_SECONDS = 10
MIN_RSA_BITS = 2048
MAX_KID_LENGTH = 200
MAX_OPEN_ALERTS = 50  # Microsoft rotates a handful of keys; more open alerts than this is noise
# Members of a private RSA JWK (RFC 7518 §6.3.2): never stored, never accepted.
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


class JwksError(Exception):
    """A JWKS document that cannot be used; the message is meant for the administrator."""


def parse_jwks(data):
    """The JWKS document in `data` (bytes or str), checked key by key; raises JwksError."""
    if isinstance(data, bytes):
        if len(data) > MAX_JWKS_BYTES:
            raise JwksError(f"The document is larger than {MAX_JWKS_BYTES // 1024} KB: it is not a JWKS.")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise JwksError("The document is not UTF-8 text: upload the JSON file itself.") from None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise JwksError(f"The document is not valid JSON ({exc}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('The document is JSON but not a JWKS: it needs a "keys" list, as in '
                        "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys.")
    if not document["keys"]:
        raise JwksError('The "keys" list is empty.')
    seen = set()
    for position, key in enumerate(document["keys"], start=1):
        kid = check_key(key, position)
        if kid in seen:
            raise JwksError(f"Key {position}: the key id {kid!r} appears twice.")
        seen.add(kid)
    return {"keys": document["keys"]}


def check_key(key, position):
    """The kid of a usable RSA signing key; raises JwksError saying what is wrong with it."""
    if not isinstance(key, dict):
        raise JwksError(f"Key {position} is not a JSON object.")
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid.strip() or len(kid) > MAX_KID_LENGTH:
        raise JwksError(f"Key {position} has no usable key id (kid).")
    label = f"Key {position} ({kid})"
    if PRIVATE_MEMBERS & set(key):
        raise JwksError(f"{label} contains a private key: import the public JWKS only, and treat this key as leaked.")
    if key.get("kty") != "RSA":
        raise JwksError(f"{label} is of type {key.get('kty')!r}; Entra signs with RSA keys (kty RSA).")
    if key.get("use", "sig") != "sig":
        raise JwksError(f"{label} is for {key.get('use')!r}, not for signatures (use sig).")
    if key.get("alg", "RS256") != "RS256":
        raise JwksError(f"{label} is for {key.get('alg')!r}; only RS256 keys are accepted.")
    try:
        public_key = jwt.PyJWK(key, algorithm="RS256").key
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise JwksError(f"{label} is not a valid RSA public key ({exc or type(exc).__name__}).") from None
    if public_key.key_size < MIN_RSA_BITS:
        raise JwksError(f"{label} has {public_key.key_size} bits; at least {MIN_RSA_BITS} are required.")
    return kid


def _fingerprint(document):
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def import_jwks(data, *, source=JwksSet.Source.UPLOAD, source_url="", actor=None, ip=None):
    """Store a JWKS document. Returns (JwksSet, created): a document identical to an active set is
    not stored twice. Raises JwksError before writing anything."""
    document = parse_jwks(data)
    fingerprint = _fingerprint(document)
    existing = JwksSet.objects.active().filter(sha256=fingerprint).first()
    if existing is not None:
        return existing, False
    key_ids = [key["kid"] for key in document["keys"]]
    with transaction.atomic():
        jwks = JwksSet.objects.create(
            source=source, source_url=source_url, document=document, key_ids=key_ids, sha256=fingerprint,
            imported_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        resolved = 0
        for alert in EntraKeyAlert.objects.open().filter(kid__in=key_ids):
            alert.resolve(actor)
            resolved += 1
        AuditEvent.record(actor, "entra.jwks_imported", jwks, ip=ip, detail={
            "source": source, "source_url": source_url, "key_ids": key_ids, "alerts_resolved": resolved,
        })
    return jwks, True


def fetch_mirror(url, *, actor=None, ip=None):
    """Fetch the JWKS at `url` (https, see models.mirror_url_error) and import it; raises JwksError.
    The rule is checked here again (the URL may have been saved before it existed, or come from the
    command line) and for every redirect, before anything is sent to the new address."""
    if not url:
        raise JwksError("Set an https:// mirror URL first.")
    problem = mirror_url_error(url)
    if problem:
        raise JwksError(f"Not fetched from {url}: {problem}")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "mdmportal"})
    try:
        status, _headers, body = outbound.fetch(request, timeout=FETCH_TIMEOUT_SECONDS, max_bytes=MAX_JWKS_BYTES,
                                                may_follow=lambda _url, location: not mirror_url_error(location))
    except outbound.RedirectRefused as exc:
        raise JwksError(f"The mirror answered with a redirect to {exc.location}, not followed: "
                        f"{mirror_url_error(exc.location)}") from None
    except outbound.TooLarge:
        raise JwksError(f"The document is larger than {MAX_JWKS_BYTES // 1024} KB: it is not a JWKS.") from None
    except outbound.TooSlow as exc:
        raise JwksError(f"Could not fetch {url}: {exc}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise JwksError(f"Could not fetch {url}: {getattr(exc, 'reason', exc)}.") from None
    if not 200 <= status < 300:
        raise JwksError(f"The mirror answered HTTP {status} for {url}.")
    return import_jwks(body, source=JwksSet.Source.MIRROR, source_url=url, actor=actor, ip=ip)


def find_key(kid):
    """The RSA public key with this kid in the newest active set that has it, or None. Reads which
    sets are active (ids and kids, not their documents) at every call; the key object itself is
    made once per process and set."""
    for jwks in ACTIVE_KEY_IDS.filter(connection, active=True, order_by=JwksSet._meta.ordering):
        if kid not in jwks.key_ids:
            continue
        key = _public_key(jwks.pk, jwks.sha256, kid)
        if key is not None:
            return key
    return None


@functools.lru_cache(maxsize=64)
def _public_key(pk, fingerprint, kid):
    """The key `kid` of stored set `pk`, or None. A stored set's document never changes (another
    document is another set, import_jwks), so the key is remembered; its fingerprint is in the
    cache key all the same."""
    document = JwksSet.objects.filter(pk=pk, sha256=fingerprint).values_list("document", flat=True).first()
    for key in (document or {}).get("keys", []):
        if key.get("kid") == kid:
            return jwt.PyJWK(key, algorithm="RS256").key
    return None


def report_unknown_kid(kid):
    """A token named a key we do not have: alert the administrators (Entra rotates its
    keys), who must import
    Microsoft's current set. Open alerts are capped: past the cap only the log hears of new kids."""
    kid = kid[:MAX_KID_LENGTH]
    if EntraKeyAlert.objects.open().filter(kid=kid).exists() or EntraKeyAlert.objects.open().count() < MAX_OPEN_ALERTS:
        EntraKeyAlert.raise_for(kid)
    logger.warning("Entra token signed with unknown key %r: import Microsoft's current JWKS", kid)
