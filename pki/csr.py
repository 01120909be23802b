"""PKCS#10 certificate requests as Windows sends them in the WS-Trust enrollment call (MS-WSTEP
3.1.4.1.2.1; PKCS#10 is RFC 2986).

Windows puts `CN=<30 chars>!<DeviceID>` plus a trailing NUL in the subject, tagged PrintableString,
where `!` and NUL are illegal, and signs with the old OIW SHA-1 OID 1.3.14.3.2.29. cryptography's
`load_der_x509_csr` refuses such requests, so we walk the DER ourselves with a small TLV reader:
it hands us the exact CertificationRequestInfo bytes the signature covers (a decode/re-encode
library could normalise them and break the signature). We never read the subject: the issued
certificate's subject comes from the DeviceID.

    CertificationRequest ::= SEQUENCE {
        certificationRequestInfo  SEQUENCE { version INTEGER, subject Name,
                                             subjectPKInfo SubjectPublicKeyInfo,
                                             attributes [0] IMPLICIT SET OF Attribute },
        signatureAlgorithm        AlgorithmIdentifier,
        signature                 BIT STRING }                                       (RFC 2986 §4)
"""
import logging
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

logger = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
MAX_CSR_BYTES = 64 * 1024

# Signature algorithm OID -> hash (the OIW SHA-1 OID is what Windows devices send).
SIGNATURE_HASHES = {
    "1.3.14.3.2.29": hashes.SHA1,  # sha1WithRSASignature (OIW), seen on Windows devices
    "1.2.840.113549.1.1.5": hashes.SHA1,  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.11": hashes.SHA256,  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": hashes.SHA384,  # sha384WithRSAEncryption
    "1.2.840.113549.1.1.13": hashes.SHA512,  # sha512WithRSAEncryption
}
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"  # PKCS#9 extensionRequest
OID_DEVICE_ID = "1.3.6.1.4.1.311.66.1.0"  # Microsoft enrollment: the DeviceID, repeated in the CSR

SEQUENCE, SET, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06
UTF8_STRING, PRINTABLE_STRING, IA5_STRING, BMP_STRING = 0x0C, 0x13, 0x16, 0x1E
ATTRIBUTES = 0xA0  # [0] IMPLICIT, constructed


class CsrError(ValueError):
    """The request is malformed, badly signed or uses a key we do not accept. The message is safe
    to log and to put in a SOAP fault (it never contains request bytes)."""


@dataclass(frozen=True)
class ParsedCsr:
    public_key: rsa.RSAPublicKey
    hash_name: str
    device_id: str | None
    signature_oid: str


@dataclass(frozen=True)
class _Tlv:
    tag: int
    start: int  # offset of the tag byte in the buffer
    content_start: int
    end: int  # offset just past the value

    def content(self, buf: bytes) -> bytes:
        return buf[self.content_start:self.end]

    def raw(self, buf: bytes) -> bytes:
        return buf[self.start:self.end]


def parse_csr(der: bytes) -> ParsedCsr:
    """Verify a DER PKCS#10 request and return its RSA key, hash and DeviceID extension.

    Raises CsrError for anything wrong: garbage, truncation, trailing bytes, a key that is not RSA
    or smaller than 2048 bits, an unknown signature algorithm or a signature that does not verify.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise CsrError("certificate request is not bytes")
    der = bytes(der)
    if not der:
        raise CsrError("certificate request is empty")
    if len(der) > MAX_CSR_BYTES:
        raise CsrError("certificate request is too large")

    outer = _single(der, 0, len(der), SEQUENCE, "CertificationRequest")
    info, algorithm, signature = _expect_children(der, outer, [SEQUENCE, SEQUENCE, BIT_STRING], "CertificationRequest")
    fields = _children(der, info, "CertificationRequestInfo")
    if len(fields) not in (3, 4):
        raise CsrError("malformed CertificationRequestInfo")
    version, _subject, spki, *rest = fields
    _expect_tag(version, INTEGER, "version")
    if version.content(der) != b"\x00":
        raise CsrError("unsupported certificate request version")
    _expect_tag(_subject, SEQUENCE, "subject")  # checked for shape only, never read
    _expect_tag(spki, SEQUENCE, "subjectPublicKeyInfo")
    attributes = rest[0] if rest else None
    if attributes is not None:
        _expect_tag(attributes, ATTRIBUTES, "attributes")

    signature_oid = _algorithm_oid(der, algorithm)
    hash_class = SIGNATURE_HASHES.get(signature_oid)
    if hash_class is None:
        raise CsrError(f"unsupported signature algorithm {signature_oid}")

    public_key = _rsa_public_key(spki.raw(der))
    signature_bytes = _bit_string(der, signature)
    try:
        public_key.verify(signature_bytes, info.raw(der), padding.PKCS1v15(), hash_class())
    except InvalidSignature:
        raise CsrError("certificate request signature does not verify") from None

    device_id = _device_id(der, attributes) if attributes is not None else None
    return ParsedCsr(public_key=public_key, hash_name=hash_class.name, device_id=device_id, signature_oid=signature_oid)


def _rsa_public_key(spki_der: bytes) -> rsa.RSAPublicKey:
    try:
        public_key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CsrError("unreadable public key") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CsrError("public key is not RSA")
    if public_key.key_size < MIN_RSA_BITS:
        raise CsrError(f"RSA key of {public_key.key_size} bits is below the minimum of {MIN_RSA_BITS}")
    return public_key


def _algorithm_oid(der: bytes, algorithm: _Tlv) -> str:
    children = _children(der, algorithm, "signatureAlgorithm")
    if not children or len(children) > 2:
        raise CsrError("malformed signatureAlgorithm")
    _expect_tag(children[0], OID, "signatureAlgorithm")
    if len(children) == 2 and (children[1].tag != NULL or children[1].content(der)):
        raise CsrError("unexpected signatureAlgorithm parameters")
    return _decode_oid(children[0].content(der))


def _bit_string(der: bytes, tlv: _Tlv) -> bytes:
    content = tlv.content(der)
    if len(content) < 2 or content[0] != 0:
        raise CsrError("malformed signature")
    return content[1:]


def _device_id(der: bytes, attributes: _Tlv) -> str | None:
    """The DeviceID extension (1.3.6.1.4.1.311.66.1.0) from the extensionRequest attribute."""
    for attribute in _children(der, attributes, "attributes"):
        _expect_tag(attribute, SEQUENCE, "attribute")
        children = _children(der, attribute, "attribute")
        if len(children) != 2 or children[0].tag != OID or children[1].tag != SET:
            raise CsrError("malformed attribute")
        if _decode_oid(children[0].content(der)) != OID_EXTENSION_REQUEST:
            continue
        for extensions in _children(der, children[1], "extensionRequest"):
            _expect_tag(extensions, SEQUENCE, "extensionRequest")
            for extension in _children(der, extensions, "extensionRequest"):
                _expect_tag(extension, SEQUENCE, "extension")
                fields = _children(der, extension, "extension")
                if len(fields) not in (2, 3) or fields[0].tag != OID or fields[-1].tag != OCTET_STRING:
                    raise CsrError("malformed extension")
                if _decode_oid(fields[0].content(der)) == OID_DEVICE_ID:
                    return _decode_device_id(fields[-1].content(der))
    return None


def _decode_device_id(value: bytes) -> str | None:
    """Windows passes the id's raw ASCII bytes as the extension value; accept a DER string wrapping
    (UTF8/Printable/IA5/OCTET/BMP) and UTF-16 too, since we have no capture of every build. An
    undecodable value is logged and ignored: the DeviceID context item remains the reference."""
    if len(value) >= 2 and value[0] in (UTF8_STRING, PRINTABLE_STRING, IA5_STRING, OCTET_STRING, BMP_STRING):
        try:
            inner = _single(value, 0, len(value), value[0], "DeviceID")
        except CsrError:
            inner = None
        if inner is not None:
            encoding = "utf-16-be" if value[0] == BMP_STRING else None
            return _device_id_text(inner.content(value), encoding)
    return _device_id_text(value, None)


def _device_id_text(raw: bytes, encoding: str | None) -> str | None:
    if encoding is None:
        encoding = "utf-16-le" if len(raw) >= 2 and raw[1::2].strip(b"\x00") == b"" else "ascii"
    try:
        text = raw.decode(encoding).strip("\x00").strip()
    except UnicodeDecodeError:
        text = ""
    if not text or len(text) > 64 or not text.isascii() or not text.isprintable():
        logger.info("ignoring an undecodable DeviceID extension in a certificate request")
        return None
    return text


# --- a minimal DER reader: single-byte tags, definite lengths, every byte accounted for ---------

def _read_tlv(buf: bytes, offset: int, limit: int) -> _Tlv:
    if offset + 2 > limit:
        raise CsrError("certificate request is truncated")
    tag = buf[offset]
    if tag & 0x1F == 0x1F:
        raise CsrError("unsupported ASN.1 tag")
    first = buf[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise CsrError("unsupported ASN.1 length")  # 0 = indefinite length, not DER
        if pos + count > limit:
            raise CsrError("certificate request is truncated")
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if pos + length > limit:
        raise CsrError("certificate request is truncated")
    return _Tlv(tag=tag, start=offset, content_start=pos, end=pos + length)


def _single(buf: bytes, start: int, end: int, tag: int, what: str) -> _Tlv:
    tlv = _read_tlv(buf, start, end)
    _expect_tag(tlv, tag, what)
    if tlv.end != end:
        raise CsrError(f"unexpected bytes after {what}")
    return tlv


def _children(buf: bytes, parent: _Tlv, what: str) -> list[_Tlv]:
    if not parent.tag & 0x20:
        raise CsrError(f"malformed {what}")
    children, pos = [], parent.content_start
    while pos < parent.end:
        child = _read_tlv(buf, pos, parent.end)
        children.append(child)
        pos = child.end
    return children


def _expect_children(buf: bytes, parent: _Tlv, tags: list[int], what: str) -> list[_Tlv]:
    children = _children(buf, parent, what)
    if [child.tag for child in children] != tags:
        raise CsrError(f"malformed {what}")
    return children


def _expect_tag(tlv: _Tlv, tag: int, what: str) -> None:
    if tlv.tag != tag:
        raise CsrError(f"malformed {what}")


def _decode_oid(content: bytes) -> str:
    if not content or content[-1] & 0x80:
        raise CsrError("malformed object identifier")
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])

