"""Our two-tier PKI, as Intune has it: a root CA and an issuing CA that signs device certificates.

The private keys live in CertificateAuthority.encrypted_key_pem as encrypted PKCS#8 PEM
(cryptography's BestAvailableEncryption: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC), with
CA_KEY_PASSPHRASE from the environment, or in development a passphrase derived from SECRET_KEY;
`manage.py rotate_ca_passphrase` moves them to a new passphrase (pki/passphrase.py).
Decrypted keys are cached per process so an enrollment pays one RSA signature, not a key
derivation. Keys and passphrases are never logged.

Device certificates: the CSR's key, CN=<DeviceID>, clientAuth EKU (RFC 5280 §4.2.1.12).
"""
import functools
import logging
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Subquery
from django.utils.crypto import salted_hmac

from mdmportal.rows import Columns

from .models import CertificateAuthority

# Every enrollment and renewal reads the active rows: their SELECT is written out once (mdmportal/rows.py).
_AUTHORITY = Columns(CertificateAuthority, "ca")

logger = logging.getLogger(__name__)

ROOT_VALIDITY_DAYS = 20 * 365
ISSUING_VALIDITY_DAYS = 10 * 365
# CA certificates start five minutes in the past to absorb clock skew between servers.
CLOCK_SKEW = timedelta(minutes=5)
# A device certificate starts a day in the past: Windows checks it against the device's own clock,
# which can trail ours by hours (a real-time clock read as local time, a restored VM, a PC that has
# not reached a time server yet during setup), and a certificate "not yet valid" there fails the
# first check-in. Only NotBefore moves: NotAfter, the lifetime and the renewal window still count
# from the moment of issue (backdating them too, as some servers did, shortens the certificate's life
# and opens the renewal window at once).
DEVICE_CLOCK_TOLERANCE = timedelta(days=1)
MIN_RSA_BITS = 2048
_CN_MAX = 64  # ub-common-name, RFC 5280 appendix A


class CaError(Exception):
    """A CA operation failed; the message is meant for an administrator."""


class CaNotInitialised(CaError):
    """No active root and issuing CA: run `manage.py init_ca` or `manage.py import_ca`."""


class CaKeyError(CaError):
    """A stored CA key cannot be decrypted with the current passphrase."""


# --- public helpers -----------------------------------------------------------------------------

def thumbprint(cert: x509.Certificate) -> str:
    """Uppercase hex SHA-1 of the DER certificate, as Windows names certificates in its stores."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def serial_hex(cert: x509.Certificate) -> str:
    """Uppercase hex serial padded to whole bytes, as OpenSSL and nginx ($ssl_client_serial) print it."""
    text = f"{cert.serial_number:X}"
    return text if len(text) % 2 == 0 else "0" + text


def active_authorities() -> tuple[CertificateAuthority, CertificateAuthority]:
    """The active (root, issuing) rows; raises CaNotInitialised when either is missing."""
    authorities = {ca.kind: ca for ca in _AUTHORITY.filter(connection, active=True)}
    root = authorities.get(CertificateAuthority.Kind.ROOT)
    issuing = authorities.get(CertificateAuthority.Kind.ISSUING)
    if root is None or issuing is None:
        raise CaNotInitialised("The certificate authority is not set up: run `manage.py init_ca` or `manage.py import_ca`.")
    return root, issuing


def active_chain(authorities=None) -> tuple[x509.Certificate, x509.Certificate]:
    """(root certificate, issuing certificate) of the active CA; raises CaNotInitialised.
    `authorities`: the active (root, issuing) rows when the caller already read them."""
    root, issuing = authorities if authorities is not None else active_authorities()
    return certificate_of(root), certificate_of(issuing)


def certificate_of(authority: CertificateAuthority) -> x509.Certificate:
    return _load_certificate(authority.certificate_pem)


def private_key_of(authority: CertificateAuthority):
    """The decrypted private key (cached per process); CaKeyError when it cannot be decrypted."""
    if not authority.encrypted_key_pem:
        raise CaKeyError(f"No private key is stored for {authority}.")
    return _decrypt_key(authority.encrypted_key_pem, _passphrase())


# --- device certificates ------------------------------------------------------------------------

def issue_device_certificate(public_key, common_name: str, *, validity_days: int | None = None,
                             authorities=None) -> x509.Certificate:
    """Sign a device certificate for `public_key` with subject CN=`common_name` (the DeviceID, or the
    Entra device id for Entra Device enrollments; never the CSR subject: Windows' CSR subject
    is not a valid PrintableString). Raises CaNotInitialised / CaKeyError / CaError, or ValueError for bad arguments.
    `authorities`: the active (root, issuing) rows when the caller already read them (active_authorities),
    so that an enrollment reads the CA once for the signature and the chain it sends."""
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_BITS:
        raise ValueError(f"device keys must be RSA of at least {MIN_RSA_BITS} bits")
    if not common_name or len(common_name) > _CN_MAX or not common_name.isprintable():
        raise ValueError("the certificate common name must be 1-64 printable characters")
    days = settings.DEVICE_CERT_VALIDITY_DAYS if validity_days is None else validity_days
    if days < 1:
        raise ValueError("validity_days must be at least 1")

    _root, issuing = authorities if authorities is not None else active_authorities()
    issuing_cert = certificate_of(issuing)
    issuing_key = private_key_of(issuing)
    now = datetime.now(UTC)
    # A certificate never outlives the CA that signed it.
    not_after = min(now + timedelta(days=days), issuing_cert.not_valid_after_utc)
    if not_after <= now:
        raise CaError("The issuing CA has expired: import or create a new one.")

    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuing_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DEVICE_CLOCK_TOLERANCE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(issuing_cert), critical=False)
    )
    return builder.sign(issuing_key, hashes.SHA256())


def active_issuing_pem():
    """The active issuing CA's certificate PEM as a subquery, for a caller that reads it along with
    another row (enrollment/clientcert.py: the device and the CA in one query). NULL without a CA."""
    return Subquery(CertificateAuthority.objects.filter(active=True, kind=CertificateAuthority.Kind.ISSUING)
                    .values("certificate_pem")[:1])


_NOT_GIVEN = object()


def verify_issued(cert: x509.Certificate, *, issuing_pem=_NOT_GIVEN) -> bool:
    """Was `cert` signed by our active issuing CA? (Signature and issuer name only; the caller checks
    validity dates and revocation.) Certificates of a replaced issuing CA no longer count.
    `issuing_pem`: the active issuing CA's PEM when the caller already read it (active_issuing_pem),
    None when there is none."""
    if issuing_pem is _NOT_GIVEN:
        try:
            _root, issuing = active_authorities()
        except CaNotInitialised:
            return False
        issuing_pem = issuing.certificate_pem
    if not issuing_pem:
        return False
    return _signed_by(cert, issuing_pem)


@functools.lru_cache(maxsize=1024)
def _signed_by(cert: x509.Certificate, issuing_pem: str) -> bool:
    """The signature check, remembered per process for the same certificate and CA (both immutable):
    a device presents the same certificate at every message of every session."""
    try:
        cert.verify_directly_issued_by(_load_certificate(issuing_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- creating and importing the CA --------------------------------------------------------------

def init_ca(*, organisation_name: str, root_key_size: int = 4096, issuing_key_size: int = 3072):
    """Create the root and issuing CA unless they exist. Returns (root, issuing, created)."""
    existing = {ca.kind: ca for ca in CertificateAuthority.objects.filter(active=True)}
    if len(existing) == 2:
        return existing[CertificateAuthority.Kind.ROOT], existing[CertificateAuthority.Kind.ISSUING], False
    if existing:
        (only,) = existing.values()
        raise CaError(f"Only the {only.get_kind_display()} is active; "
                      "import a complete chain with `manage.py import_ca --replace`.")
    organisation = " ".join(organisation_name.split())
    if not organisation:
        raise CaError("The organisation name is empty.")
    if root_key_size < 3072 or issuing_key_size < MIN_RSA_BITS:
        raise CaError("The root key needs at least 3072 bits and the issuing key at least 2048.")

    now = datetime.now(UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=root_key_size)
    root_name = ca_name(organisation, "Root CA")
    root_cert = build_ca_certificate(
        subject=root_name, public_key=root_key.public_key(), issuer=root_name, issuer_key=root_key,
        issuer_public_key=root_key.public_key(), path_length=1, days=ROOT_VALIDITY_DAYS, now=now,
    )
    issuing_key = rsa.generate_private_key(public_exponent=65537, key_size=issuing_key_size)
    issuing_cert = build_ca_certificate(
        subject=ca_name(organisation, "Issuing CA"), public_key=issuing_key.public_key(), issuer=root_name,
        issuer_key=root_key, issuer_public_key=root_key.public_key(), path_length=0, days=ISSUING_VALIDITY_DAYS, now=now,
    )
    try:
        with transaction.atomic():
            root = _store(CertificateAuthority.Kind.ROOT, root_cert, root_key)
            issuing = _store(CertificateAuthority.Kind.ISSUING, issuing_cert, issuing_key)
    except IntegrityError:
        # Another process created the CA at the same moment (one active CA per kind): keep theirs.
        root, issuing = active_authorities()
        return root, issuing, False
    logger.info("created root CA %s and issuing CA %s", root.thumbprint, issuing.thumbprint)
    return root, issuing, True


def import_ca(*, root_certificate: x509.Certificate, issuing_certificate: x509.Certificate, issuing_key,
              root_key=None, replace: bool = False):
    """Make an existing two-tier chain ours. The root key is optional (it may stay offline); the
    issuing key is required. Verifies that the issuing CA is signed by the root and that every key
    matches its certificate. Returns (root, issuing, created); created is False when exactly this
    chain is already active. An active CA is only replaced when `replace` is true."""
    _check_chain(root_certificate, issuing_certificate)
    _check_key_matches(issuing_key, issuing_certificate, "issuing CA")
    if root_key is not None:
        _check_key_matches(root_key, root_certificate, "root CA")

    with transaction.atomic():
        active = {ca.kind: ca for ca in CertificateAuthority.objects.select_for_update().filter(active=True)}
        root_row = active.get(CertificateAuthority.Kind.ROOT)
        issuing_row = active.get(CertificateAuthority.Kind.ISSUING)
        if (root_row and issuing_row and root_row.thumbprint == thumbprint(root_certificate)
                and issuing_row.thumbprint == thumbprint(issuing_certificate)):
            return root_row, issuing_row, False
        if active and not replace:
            raise CaError("A certificate authority is already active; pass --replace to replace it "
                          "(devices enrolled under it will have to enroll again).")
        CertificateAuthority.objects.filter(active=True).update(active=False)
        # An earlier import of the same certificate is superseded by this one.
        CertificateAuthority.objects.filter(
            thumbprint__in=[thumbprint(root_certificate), thumbprint(issuing_certificate)]).delete()
        root = _store(CertificateAuthority.Kind.ROOT, root_certificate, root_key)
        issuing = _store(CertificateAuthority.Kind.ISSUING, issuing_certificate, issuing_key)
    logger.info("imported root CA %s and issuing CA %s", root.thumbprint, issuing.thumbprint)
    return root, issuing, True


def load_certificate(data: bytes, what: str) -> x509.Certificate:
    """The first certificate of a PEM (or DER) file."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except (ValueError, IndexError):
        raise CaError(f"The {what} file does not hold a readable certificate.") from None


def load_private_key(data: bytes, password: bytes | None, what: str):
    """A PEM or DER private key. One password serves every file of an import, so a key that turns
    out not to be encrypted is read without it."""
    load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        try:
            return load(data, password=password)
        except TypeError:
            if password is None:
                raise CaError(f"The {what} key is encrypted: give its password.") from None
            return load(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CaError(f"The {what} key cannot be read (wrong password or not a private key).") from None


def load_pkcs12(data: bytes, password: bytes | None, what: str):
    """(key, certificate, additional certificates) of a PKCS#12 file."""
    try:
        key, cert, additional = pkcs12.load_key_and_certificates(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CaError(f"The {what} PKCS#12 file cannot be read (wrong password or not PKCS#12).") from None
    if key is None or cert is None:
        raise CaError(f"The {what} PKCS#12 file must hold a private key and its certificate.")
    return key, cert, additional


# --- building blocks (also used by the test factories) ---------------------------------------

def encrypt_key(key, passphrase: bytes | None = None) -> str:
    """Encrypted PKCS#8 PEM of a CA key, as stored in CertificateAuthority.encrypted_key_pem, under the
    current passphrase or `passphrase` (passphrase_bytes; a rotation)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_passphrase() if passphrase is None else passphrase),
    ).decode()


def decrypt_key(encrypted_pem: str, passphrase: bytes):
    """A stored key opened with an explicit passphrase (passphrase_bytes; a rotation). CaKeyError when
    it does not open."""
    return _decrypt_key(encrypted_pem, passphrase)


def passphrase_bytes(configured: str) -> bytes:
    """The passphrase the CA keys are encrypted with when CA_KEY_PASSPHRASE is `configured`; "" is
    the development case, a value derived from SECRET_KEY."""
    if configured:
        return configured.encode()
    # Development only (the deploy check enrollment.E001 refuses it): derived from SECRET_KEY. The salt
    # keeps the name this module had before the pki app: changing it would lose the keys it encrypted.
    return salted_hmac("enrollment.ca.key-passphrase", "development", algorithm="sha256").hexdigest().encode()


def ca_name(organisation: str, role: str) -> x509.Name:
    """O=<organisation>, CN=<organisation> <role>, cut to the 64-character limit of both."""
    fitted = organisation[:_CN_MAX - len(role) - 1].rstrip()
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:_CN_MAX]),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{fitted} {role}"),
    ])


def build_ca_certificate(*, subject, public_key, issuer, issuer_key, issuer_public_key, path_length, days, now):
    """A CA certificate (BasicConstraints CA with `path_length`, keyCertSign + cRLSign, SKI/AKI)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


# --- internals ----------------------------------------------------------------------------------

def _passphrase() -> bytes:
    return passphrase_bytes(settings.CA_KEY_PASSPHRASE)


# The PBKDF2 of the PKCS#8 decryption is paid once per process and key, not per enrollment. The
# passphrase is part of the cache key so a changed passphrase is noticed (and fails) at once.
@functools.lru_cache(maxsize=16)
def _decrypt_key(encrypted_pem: str, passphrase: bytes):
    try:
        return serialization.load_pem_private_key(encrypted_pem.encode(), password=passphrase)
    except (ValueError, TypeError):
        raise CaKeyError("A stored CA private key cannot be decrypted with the current CA_KEY_PASSPHRASE.") from None


@functools.lru_cache(maxsize=32)
def _load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _store(kind, cert: x509.Certificate, key) -> CertificateAuthority:
    return CertificateAuthority.objects.create(
        kind=kind,
        subject=cert.subject.rfc4514_string()[:255],
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        encrypted_key_pem=encrypt_key(key) if key is not None else "",
        serial=serial_hex(cert),
        thumbprint=thumbprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        active=True,
    )


def _key_usage(**enabled) -> x509.KeyUsage:
    flags = dict.fromkeys(
        ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"], False)
    flags.update(enabled)
    return x509.KeyUsage(**flags)


def _authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_chain(root: x509.Certificate, issuing: x509.Certificate) -> None:
    for cert, what in ((root, "root"), (issuing, "issuing")):
        if not _is_ca(cert):
            raise CaError(f"The {what} certificate is not a CA certificate (BasicConstraints CA=true is missing).")
        public_key = cert.public_key()
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
            raise CaError(f"The {what} CA key is shorter than {MIN_RSA_BITS} bits.")
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CaError(f"The {what} CA key must be RSA or EC.")
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise CaError("The root certificate is not self-signed.") from None
    try:
        issuing.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise CaError("The issuing CA certificate is not signed by the root certificate.") from None
    if issuing.not_valid_after_utc <= datetime.now(UTC):
        raise CaError("The issuing CA certificate has expired.")


def _check_key_matches(key, cert: x509.Certificate, what: str) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if not hasattr(key, "public_key") or key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CaError(f"The {what} private key does not match its certificate.")
