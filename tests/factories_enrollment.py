"""One factory per model of the enrollment app."""
import functools
from datetime import UTC, datetime

import factory
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from factory.django import DjangoModelFactory

from enrollment import ca
from enrollment.models import CertificateAuthority

KEY_POOL = 4  # CA keys cycle through this many test keys; consecutive CAs never share one


@functools.cache
def rsa_key(index: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A test RSA key, generated once per process (generation would dominate the test time)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _ca_certificate(o):
    issuer = o.issuer
    issuer_cert = ca.certificate_of(issuer) if issuer is not None else None
    issuer_key = ca.private_key_of(issuer) if issuer is not None else o.private_key
    return ca.build_ca_certificate(
        subject=ca.ca_name(o.organisation, "Issuing CA" if issuer is not None else "Root CA"),
        public_key=o.private_key.public_key(),
        issuer=issuer_cert.subject if issuer is not None else ca.ca_name(o.organisation, "Root CA"),
        issuer_key=issuer_key,
        issuer_public_key=issuer_key.public_key(),
        path_length=0 if issuer is not None else 1,
        days=o.validity_days,
        now=datetime.now(UTC),
    )


class CertificateAuthorityFactory(DjangoModelFactory):
    """A root CA by default; `issuing=True` (with `issuer=<root>`, else a new root) for an issuing CA."""

    class Meta:
        model = CertificateAuthority

    class Params:
        key_index = factory.Sequence(lambda n: n % KEY_POOL)
        private_key = factory.LazyAttribute(lambda o: rsa_key(o.key_index))
        organisation = factory.Sequence(lambda n: f"Contoso {n}")
        issuer = None
        validity_days = 3650
        certificate = factory.LazyAttribute(_ca_certificate)
        issuing = factory.Trait(
            kind=CertificateAuthority.Kind.ISSUING,
            issuer=factory.SubFactory("tests.factories_enrollment.CertificateAuthorityFactory"),
        )
        without_key = factory.Trait(encrypted_key_pem="")
        retired = factory.Trait(active=False)

    kind = CertificateAuthority.Kind.ROOT
    subject = factory.LazyAttribute(lambda o: o.certificate.subject.rfc4514_string())
    certificate_pem = factory.LazyAttribute(lambda o: o.certificate.public_bytes(serialization.Encoding.PEM).decode())
    encrypted_key_pem = factory.LazyAttribute(lambda o: ca.encrypt_key(o.private_key))
    serial = factory.LazyAttribute(lambda o: ca.serial_hex(o.certificate))
    thumbprint = factory.LazyAttribute(lambda o: ca.thumbprint(o.certificate))
    not_before = factory.LazyAttribute(lambda o: o.certificate.not_valid_before_utc)
    not_after = factory.LazyAttribute(lambda o: o.certificate.not_valid_after_utc)
    active = True


def create_ca_chain(**kwargs):
    """An active root and issuing CA with 2048-bit test keys: (root, issuing)."""
    root = CertificateAuthorityFactory(**kwargs)
    issuing = CertificateAuthorityFactory(issuing=True, issuer=root, **kwargs)
    return root, issuing
