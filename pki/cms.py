"""The CMS SignedData a Windows ROBO renewal carries (MS-MDE2 3.5; RFC 5652 §5; MS-WCCE 3.1.1.4.3.2.1,
"Renew Certificate Request Using CMS and PKCS #10 Request Formats"): id-signedData whose
encapsulated id-data content is the new PKCS#10, and whose first SignerInfo is made with the key of
the certificate being renewed.

asn1crypto parses the structure (cryptography 46 can build SignedData but not verify it); the
signature itself is checked with cryptography against the certificate the caller says must have
made it, never against a certificate the message carries. Signed attributes are verified over
their exact received bytes re-tagged as a SET OF (RFC 5652 §5.4), never over a re-encoding.
"""
import hashlib
import hmac
from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_SIGNED_DATA_BYTES = 256 * 1024

DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
# Signature algorithm OIDs of a SignerInfo -> the digest they imply (None: the SignerInfo's own).
SIGNATURE_ALGORITHMS = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption, what RFC 5652 signers usually write
    "1.3.14.3.2.29": "sha1",  # sha1WithRSASignature (OIW), Windows' habit
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}


class CmsError(ValueError):
    """The message is malformed or not validly signed by the expected certificate. The message is
    safe to log (it never contains request bytes)."""


class WrongSigner(CmsError):
    """The message is well formed but its first SignerInfo names another certificate."""


@dataclass(frozen=True)
class SignedContent:
    content: bytes  # the encapsulated content: the new PKCS#10, DER
    digest: str  # the SignerInfo's digest algorithm, for the logs


def verify_signed_data(der: bytes, signer: x509.Certificate) -> SignedContent:
    """Check that `der` is a SignedData over id-data whose first SignerInfo names `signer` and
    carries a valid signature by its key; return the content. Raises CmsError (WrongSigner when
    the SignerInfo names another certificate)."""
    if not der:
        raise CmsError("the signed request is empty")
    if len(der) > MAX_SIGNED_DATA_BYTES:
        raise CmsError("the signed request is too large")
    try:
        content, signer_info = _parse(der)
        _check_signer(signer_info["sid"], signer)
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        signed_bytes = _signed_bytes(signer_info, content, digest_name)
        signature_oid = signer_info["signature_algorithm"]["algorithm"].dotted
        signature = signer_info["signature"].native
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # asn1crypto parses lazily: malformed inner parts surface on first access, as any of these.
        raise CmsError(f"malformed SignedData ({type(exc).__name__})") from None
    _verify(signer, signature, signed_bytes, digest_name, signature_oid)
    return SignedContent(content=content, digest=digest_name)


def _parse(der):
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise CmsError(f"content type {info['content_type'].dotted} is not signed data")
    signed = info["content"]
    encapsulated = signed["encap_content_info"]
    if encapsulated["content_type"].native != "data":
        raise CmsError(f"encapsulated content type {encapsulated['content_type'].dotted} is not data")
    content = encapsulated["content"].native
    if not isinstance(content, bytes) or not content:
        raise CmsError("the signed request has no encapsulated content (detached signature)")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) == 0:
        raise CmsError("the signed request has no SignerInfo")
    # MS-WCCE: the first SignerInfo is the one made with the key of the certificate being renewed.
    return content, signer_infos[0]


def _check_signer(sid, signer):
    ours = asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))
    if sid.name == "issuer_and_serial_number":
        named = sid.chosen
        if named["serial_number"].native != ours.serial_number or named["issuer"] != ours.issuer:
            raise WrongSigner(f"signed by certificate serial {named['serial_number'].native:X}")
    elif sid.name == "subject_key_identifier":
        if ours.key_identifier is None or sid.chosen.native != ours.key_identifier:
            raise WrongSigner("signed by another key identifier")
    else:
        raise CmsError(f"unknown signer identifier {sid.name}")


def _signed_bytes(signer_info, content, digest_name):
    """What the signature covers (RFC 5652 §5.4): the content itself, or, when signed attributes are
    present, their DER as a SET OF, after checking they bind this content."""
    if digest_name not in DIGESTS:
        raise CmsError(f"unsupported digest algorithm {digest_name}")
    attributes = signer_info["signed_attrs"]
    if isinstance(attributes, core.Void):
        return content
    values = {}
    for attribute in attributes:
        values.setdefault(attribute["type"].native, []).extend(attribute["values"])
    content_types = [value.native for value in values.get("content_type", [])]
    digests = [value.native for value in values.get("message_digest", [])]
    if content_types != ["data"]:
        raise CmsError("the signed attributes do not name data as the content type")
    if len(digests) != 1:
        raise CmsError("the signed attributes carry no single message digest")
    if not hmac.compare_digest(digests[0], hashlib.new(digest_name, content).digest()):
        raise CmsError("the message digest does not match the content")
    # The [0] IMPLICIT tag becomes the universal SET tag; length and contents stay byte for byte.
    return b"\x31" + attributes.dump()[1:]


def _verify(signer, signature, data, digest_name, signature_oid):
    if signature_oid not in SIGNATURE_ALGORITHMS:
        raise CmsError(f"unsupported signature algorithm {signature_oid}")
    implied = SIGNATURE_ALGORITHMS[signature_oid]
    if implied is not None and implied != digest_name:
        raise CmsError(f"signature algorithm {signature_oid} does not match digest {digest_name}")
    public_key = signer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CmsError("the signer's key is not RSA")
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), DIGESTS[digest_name]())
    except InvalidSignature:
        raise CmsError("the signature does not verify with the signer's key") from None
