"""The device's certificates: the certificate request it sends, the thumbprint Windows names
certificates by, and the PKCS#7 of a ROBO renewal."""
import secrets
import string

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

# The signature algorithm a request is signed with, per hash name: SHA-1 under the old OIW OID
# 1.3.14.3.2.29 (szOID_OIWSEC_sha1RSASign), as Windows signs; the RFC 4055 OIDs otherwise.
CSR_SIGNATURES = {
    "sha1": ("1.3.14.3.2.29", hashes.SHA1),
    "sha256": ("1.2.840.113549.1.1.11", hashes.SHA256),
    "sha384": ("1.2.840.113549.1.1.12", hashes.SHA384),
    "sha512": ("1.2.840.113549.1.1.13", hashes.SHA512),
}
OID_COMMON_NAME = "2.5.4.3"
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"  # PKCS#9 extensionRequest
OID_ENROLLMENT_DEVICE_ID = "1.3.6.1.4.1.311.66.1.0"  # the DeviceID, repeated in the request
OID_OS_VERSION = "1.3.6.1.4.1.311.13.2.3"  # szOID_OS_VERSION
CSR_OS_VERSION = "10.0.22631.2"
_CN_PREFIX_CHARS = string.ascii_uppercase + string.digits


def _der(tag, content):
    """One DER TLV (X.690 8.1): the definite length in short or long form."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    length = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _sequence(*parts):
    return _der(0x30, b"".join(parts))


def _set(*parts):
    return _der(0x31, b"".join(parts))


def _oid(dotted):
    """An OBJECT IDENTIFIER (X.690 8.19): the first two arcs in one, each arc base 128, high bit = more."""
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    encoded = bytearray()
    for arc in (first * 40 + second, *rest):
        groups = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            groups.append(0x80 | (arc & 0x7F))
        encoded += bytes(reversed(groups))
    return _der(0x06, bytes(encoded))


def _random_text(alphabet, length):
    """`length` characters each drawn uniformly from `alphabet` (up to 256 of them), as many
    secrets.choice calls would, from one read of the OS's random source per round: a byte at or above the
    largest multiple of len(alphabet) is dropped, so that every character stays equally likely."""
    size = len(alphabet)
    limit = 256 - 256 % size
    text = ""
    while len(text) < length:
        text += "".join([alphabet[byte % size] for byte in secrets.token_bytes(length) if byte < limit])
    return text[:length]


def build_windows_csr(private_key, device_id, *, hash_name="sha1"):
    """The DER PKCS#10 (RFC 2986) Windows puts in its RequestSecurityToken (MS-WSTEP 3.1.4.1.2.1), with
    its quirks: the subject CN is 30 random characters, "!", the DeviceID and a NUL, tagged
    PrintableString although "!" and NUL are not printable characters; the attributes carry the OS
    version (IA5String) and an extensionRequest whose DeviceID extension holds the id's bytes without an
    inner string; the signature is SHA-1 under the OIW OID unless `hash_name` says otherwise."""
    if hash_name not in CSR_SIGNATURES:
        raise ValueError(f"unsupported hash {hash_name!r}")
    if not device_id or not device_id.isascii() or not device_id.isprintable():
        raise ValueError("device_id must be printable ASCII")
    prefix = _random_text(_CN_PREFIX_CHARS, 30)
    common_name = _der(0x13, f"{prefix}!{device_id}\x00".encode("ascii"))  # PrintableString
    subject = _sequence(_set(_sequence(_oid(OID_COMMON_NAME), common_name)))
    public_key = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    os_version = _sequence(_oid(OID_OS_VERSION), _set(_der(0x16, CSR_OS_VERSION.encode("ascii"))))  # IA5String
    device_extension = _sequence(_oid(OID_ENROLLMENT_DEVICE_ID), _der(0x04, device_id.encode("ascii")))
    extension_request = _sequence(_oid(OID_EXTENSION_REQUEST), _set(_sequence(device_extension)))
    attributes = _der(0xA0, os_version + extension_request)  # [0] IMPLICIT SET OF Attribute
    info = _sequence(_der(0x02, b"\x00"), subject, public_key, attributes)  # version 0 (v1)
    oid, hash_class = CSR_SIGNATURES[hash_name]
    signature = private_key.sign(info, padding.PKCS1v15(), hash_class())
    return _sequence(info, _sequence(_oid(oid), _der(0x05, b"")), _der(0x03, b"\x00" + signature))


def thumbprint(cert):
    """Uppercase hex SHA-1 of the DER certificate: what Windows calls a thumbprint."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def signed_renewal_request(certificate, private_key, csr_der):
    """The PKCS#7 of a ROBO renewal (MS-MDE2 3.5; MS-WCCE 3.1.1.4.3.2.1): SignedData around the new
    PKCS#10, signed by the key of the certificate being renewed, which it carries."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(csr_der).add_signer(certificate, private_key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
