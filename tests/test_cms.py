"""CMS SignedData verification (pki.cms) against shapes a second encoder (asn1crypto) makes:
the SHA-1, attribute-less, OIW-OID form older Windows clients write, and the edge cases."""
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID

from pki import cms
from simulator import signed_renewal_request
from tests.factories_enrollment import rsa_key

CONTENT = b"0\x03\x02\x01\x00 stands in for the PKCS#10"


def certificate(key_index=10, serial=4242):
    key = rsa_key(key_index)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1E08C6E95D8BB843B1278FF45BC60CC6")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def windows_style(cert, key, *, content=CONTENT, sid="issuer", content_type="data", detached=False,
                  digest="sha1", signature_oid="1.3.14.3.2.29", hash_class=hashes.SHA1):
    """SignedData without signed attributes: the signature is over the content itself."""
    ours = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    if sid == "issuer":
        signer = asn1_cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": ours.issuer,
                                                                         "serial_number": ours.serial_number}})
    else:
        signer = asn1_cms.SignerIdentifier({"subject_key_identifier": ours.key_identifier})
    signer_info = asn1_cms.SignerInfo({
        "version": "v1" if sid == "issuer" else "v3", "sid": signer,
        "digest_algorithm": {"algorithm": digest}, "signature_algorithm": {"algorithm": signature_oid},
        "signature": key.sign(content, padding.PKCS1v15(), hash_class()),
    })
    signed = asn1_cms.SignedData({
        "version": "v1", "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": {"content_type": content_type, "content": None if detached else content},
        "certificates": [ours], "signer_infos": [signer_info],
    })
    return asn1_cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def test_sha1_signature_without_signed_attributes_verifies():
    cert, key = certificate()

    signed = cms.verify_signed_data(windows_style(cert, key), cert)

    assert signed.content == CONTENT and signed.digest == "sha1"


def test_signer_named_by_subject_key_identifier_verifies():
    cert, key = certificate()

    assert cms.verify_signed_data(windows_style(cert, key, sid="ski"), cert).content == CONTENT


def test_signed_attributes_made_by_cryptography_verify():
    cert, key = certificate()

    assert cms.verify_signed_data(signed_renewal_request(cert, key, CONTENT), cert).digest == "sha256"


def test_another_certificate_as_signer_is_a_wrong_signer():
    cert, key = certificate()
    other, _ = certificate(11, serial=77)

    with pytest.raises(cms.WrongSigner):
        cms.verify_signed_data(windows_style(cert, key), other)
    with pytest.raises(cms.WrongSigner):
        cms.verify_signed_data(windows_style(cert, key, sid="ski"), other)


def test_signature_algorithm_contradicting_the_digest_is_refused():
    cert, key = certificate()

    with pytest.raises(cms.CmsError, match="does not match digest"):
        cms.verify_signed_data(windows_style(cert, key, signature_oid="1.2.840.113549.1.1.11"), cert)


@pytest.mark.parametrize("options, message", [
    ({"detached": True}, "no encapsulated content"),
    ({"content_type": "signed_data", "detached": True}, "not data"),
    ({"digest": "md5", "signature_oid": "1.2.840.113549.1.1.1", "hash_class": hashes.MD5}, "unsupported digest"),
])
def test_shapes_we_do_not_accept_are_refused(options, message):
    cert, key = certificate()

    with pytest.raises(cms.CmsError, match=message):
        cms.verify_signed_data(windows_style(cert, key, **options), cert)


@pytest.mark.parametrize("data", [b"", b"\x30\x00", b"\x30\x03\x02\x01\x00", b"junk" * 10, b"\x30" + b"\xff" * 8])
def test_garbage_is_a_cms_error_not_a_crash(data):
    cert, _ = certificate()

    with pytest.raises(cms.CmsError):
        cms.verify_signed_data(data, cert)


def test_oversized_message_is_refused_before_parsing():
    cert, _ = certificate()

    with pytest.raises(cms.CmsError, match="too large"):
        cms.verify_signed_data(b"\x30" * (cms.MAX_SIGNED_DATA_BYTES + 1), cert)
