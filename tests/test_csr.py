"""Certificate requests: the Windows quirks are accepted, everything malformed is a CsrError."""
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from pki.csr import CsrError, _decode_device_id, parse_csr
from simulator import build_windows_csr
from tests.factories_enrollment import rsa_key

DEVICE_ID = "1E08C6E95D8BB843B1278FF45BC60CC6"
FIXTURES = Path(__file__).parent / "fixtures"


def public_numbers(key):
    return key.public_key().public_numbers() if hasattr(key, "private_numbers") else key.public_numbers()


def cryptography_csr(key, algorithm=None):
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
        .sign(key, algorithm if algorithm is not None else hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def test_windows_csr_is_refused_by_cryptography():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)

    with pytest.raises(ValueError, match="PrintableString"):
        x509.load_der_x509_csr(der)


def test_windows_csr_with_sha1_oiw_oid_is_accepted():
    key = rsa_key(10)
    der = build_windows_csr(key, DEVICE_ID)

    parsed = parse_csr(der)

    assert parsed.public_key.public_numbers() == public_numbers(key)
    assert parsed.hash_name == "sha1"
    assert parsed.signature_oid == "1.3.14.3.2.29"
    assert parsed.device_id == DEVICE_ID


def test_windows_csr_subject_has_the_printable_string_quirks():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)

    # PrintableString (0x13) holding "<30 chars>!<DeviceID>" and a trailing NUL.
    value = f"!{DEVICE_ID}\x00".encode()
    position = der.index(value)
    assert der[position - 32] == 0x13
    assert der[position - 31] == 30 + len(value)


def test_windows_shaped_csr_fixture_is_accepted():
    # Built once by a Windows-shaped builder and kept, so a change to the builder cannot hide a parser bug.
    der = (FIXTURES / "windows_csr_sha1.der").read_bytes()

    parsed = parse_csr(der)

    assert parsed.hash_name == "sha1"
    assert parsed.device_id == DEVICE_ID
    with pytest.raises(ValueError):
        x509.load_der_x509_csr(der)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_windows_shaped_csr_with_sha2_is_accepted(hash_name):
    parsed = parse_csr(build_windows_csr(rsa_key(10), DEVICE_ID, hash_name=hash_name))

    assert parsed.hash_name == hash_name


def test_csr_from_cryptography_with_sha256_is_accepted_without_device_id():
    key = rsa_key(11)

    parsed = parse_csr(cryptography_csr(key))

    assert parsed.hash_name == "sha256"
    assert parsed.device_id is None
    assert parsed.public_key.public_numbers() == public_numbers(key)


def test_csr_with_sha1_rsa_encryption_oid_is_accepted():
    # cryptography no longer signs SHA-1 requests; the algorithm identifier is outside the signed
    # bytes, so swap the OIW SHA-1 OID for sha1WithRSAEncryption in a Windows-shaped request.
    der = build_windows_csr(rsa_key(11), DEVICE_ID)
    oiw_algorithm = b"\x30\x09\x06\x05\x2b\x0e\x03\x02\x1d\x05\x00"
    rsa_sha1_algorithm = b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05\x05\x00"
    body = der[4:].replace(oiw_algorithm, rsa_sha1_algorithm)
    assert der[:2] == b"\x30\x82"

    parsed = parse_csr(b"\x30\x82" + len(body).to_bytes(2, "big") + body)

    assert parsed.signature_oid == "1.2.840.113549.1.1.5"
    assert parsed.hash_name == "sha1"


def test_tampered_request_info_is_refused():
    der = bytearray(build_windows_csr(rsa_key(10), DEVICE_ID))
    position = der.index(DEVICE_ID.encode())  # inside the signed subject
    der[position] ^= 0x01

    with pytest.raises(CsrError, match="signature"):
        parse_csr(bytes(der))


def test_request_signed_by_another_key_is_refused():
    honest = build_windows_csr(rsa_key(10), DEVICE_ID)
    forged = build_windows_csr(rsa_key(11), DEVICE_ID)
    # The honest request's info and key with the other key's 2048-bit signature (the last 256 bytes).
    mixed = honest[:-256] + forged[-256:]

    with pytest.raises(CsrError, match="signature"):
        parse_csr(mixed)


def test_request_whose_signature_was_made_over_other_bytes_is_refused():
    key = rsa_key(10)
    der = build_windows_csr(key, DEVICE_ID)
    signature = key.sign(b"something else", padding.PKCS1v15(), hashes.SHA1())
    tampered = der[: len(der) - len(signature)] + signature

    with pytest.raises(CsrError, match="signature"):
        parse_csr(tampered)


def test_rsa_1024_key_is_refused():
    small = rsa_key(12, bits=1024)

    with pytest.raises(CsrError, match="1024 bits"):
        parse_csr(build_windows_csr(small, DEVICE_ID))


def test_ec_key_is_refused():
    der = cryptography_csr(ec.generate_private_key(ec.SECP256R1()))

    with pytest.raises(CsrError, match="not RSA|unsupported signature"):
        parse_csr(der)


def test_unknown_signature_algorithm_is_refused():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)
    oiw_sha1 = b"\x06\x05\x2b\x0e\x03\x02\x1d"  # 1.3.14.3.2.29
    unknown = b"\x06\x05\x2b\x0e\x03\x02\x1e"  # 1.3.14.3.2.30

    with pytest.raises(CsrError, match="unsupported signature algorithm 1.3.14.3.2.30"):
        parse_csr(der.replace(oiw_sha1, unknown))


@pytest.mark.parametrize("garbage", [
    b"", b"\x00", b"\x30", b"\x30\x80\x00\x00", b"\x30\x00", b"\x31\x03\x02\x01\x00", b"not a csr at all",
    b"\x30\x84\xff\xff\xff\xff", b"\x1f\x81\x01\x00", "a string", None,
])
def test_garbage_is_a_csr_error(garbage):
    with pytest.raises(CsrError):
        parse_csr(garbage)


def test_every_truncation_is_a_csr_error():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)

    for length in range(len(der)):
        with pytest.raises(CsrError):
            parse_csr(der[:length])


def test_trailing_bytes_are_a_csr_error():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)

    with pytest.raises(CsrError, match="unexpected bytes"):
        parse_csr(der + b"\x00")


def test_every_sampled_byte_corruption_is_a_csr_error():
    der = build_windows_csr(rsa_key(10), DEVICE_ID)

    for position in range(0, len(der), 7):
        corrupted = bytearray(der)
        corrupted[position] ^= 0xFF
        try:
            parse_csr(bytes(corrupted))
        except CsrError:
            continue
        pytest.fail(f"a corruption at byte {position} was accepted")


def test_build_windows_csr_refuses_unknown_hash():
    with pytest.raises(ValueError):
        build_windows_csr(rsa_key(10), DEVICE_ID, hash_name="md5")


@pytest.mark.parametrize("value", [
    DEVICE_ID.encode(),  # raw bytes, as the Windows enrollment client writes it
    DEVICE_ID.encode() + b"\x00",
    b"\x0c\x20" + DEVICE_ID.encode(),  # UTF8String
    b"\x16\x20" + DEVICE_ID.encode(),  # IA5String
    b"\x04\x20" + DEVICE_ID.encode(),  # OCTET STRING
    b"\x1e\x40" + DEVICE_ID.encode("utf-16-be"),  # BMPString
    DEVICE_ID.encode("utf-16-le"),
])
def test_device_id_extension_encodings_are_understood(value):
    assert _decode_device_id(value) == DEVICE_ID


@pytest.mark.parametrize("value", [b"", b"\x00\x00", bytes(range(16)), b"\xff" * 40, b"A" * 65])
def test_undecodable_device_id_extension_is_ignored(value):
    assert _decode_device_id(value) is None


@pytest.mark.parametrize("hash_name, signature_oid", [("sha1", "1.3.14.3.2.29"), ("sha256", "1.2.840.113549.1.1.11"),
                                                      ("sha384", "1.2.840.113549.1.1.12"),
                                                      ("sha512", "1.2.840.113549.1.1.13")])
def test_the_simulators_own_request_is_accepted(hash_name, signature_oid):
    """The device simulator writes its request itself, as a client (simulator/certificates.py); the server reads it."""
    key = rsa_key(10)
    parsed = parse_csr(build_windows_csr(key, DEVICE_ID, hash_name=hash_name))
    assert parsed.signature_oid == signature_oid and parsed.hash_name == hash_name
    assert parsed.public_key.public_numbers() == public_numbers(key)
    assert parsed.device_id == DEVICE_ID
