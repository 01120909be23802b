"""Our two-tier CA: creation, import, keys encrypted at rest, device certificates."""
import base64
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import CommandError, call_command

from pki import ca, checks
from pki.management.commands.import_ca import Command as ImportCaCommand
from pki.models import CertificateAuthority
from tests.factories_enrollment import CertificateAuthorityFactory, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

PASSPHRASE = "a long random test passphrase for the CA keys"


@pytest.fixture(autouse=True)
def ca_passphrase(settings):
    settings.CA_KEY_PASSPHRASE = PASSPHRASE


@pytest.fixture
def chain():
    return create_ca_chain()


def device_key():
    return rsa_key(20)


def ca_pair(root_index=30, issuing_index=31, *, signer_index=None):
    """Root and issuing certificates (and keys) outside the database, as an administrator has them."""
    now = datetime.now(UTC)
    root_key, issuing_key = rsa_key(root_index), rsa_key(issuing_index)
    root_name = ca.ca_name("Fabrikam", "Root CA")
    root = ca.build_ca_certificate(subject=root_name, public_key=root_key.public_key(), issuer=root_name,
                                   issuer_key=root_key, issuer_public_key=root_key.public_key(),
                                   path_length=1, days=100, now=now)
    signer = rsa_key(signer_index) if signer_index is not None else root_key
    issuing = ca.build_ca_certificate(subject=ca.ca_name("Fabrikam", "Issuing CA"), public_key=issuing_key.public_key(),
                                      issuer=root_name, issuer_key=signer, issuer_public_key=signer.public_key(),
                                      path_length=0, days=50, now=now)
    return root, root_key, issuing, issuing_key


def pem(obj, password=None):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def basic_constraints(cert):
    return cert.extensions.get_extension_for_class(x509.BasicConstraints)


# --- init_ca ------------------------------------------------------------------------------------

def test_init_ca_creates_root_and_issuing_ca():
    root, issuing, created = ca.init_ca(organisation_name="Contoso  Ltd", root_key_size=3072, issuing_key_size=2048)

    assert created is True
    root_cert, issuing_cert = ca.active_chain()
    assert root.kind == "root" and issuing.kind == "issuing"
    assert root_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Contoso Ltd Root CA"
    assert issuing_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Contoso Ltd Issuing CA"
    assert root_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Contoso Ltd"
    assert root_cert.public_key().key_size == 3072 and issuing_cert.public_key().key_size == 2048
    root_cert.verify_directly_issued_by(root_cert)
    issuing_cert.verify_directly_issued_by(root_cert)
    assert basic_constraints(root_cert).critical and basic_constraints(root_cert).value.path_length == 1
    assert basic_constraints(issuing_cert).value.ca and basic_constraints(issuing_cert).value.path_length == 0
    key_usage = issuing_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.key_cert_sign and key_usage.crl_sign
    now = datetime.now(UTC)
    assert root_cert.not_valid_after_utc - now > timedelta(days=19 * 365)
    assert timedelta(days=9 * 365) < issuing_cert.not_valid_after_utc - now < timedelta(days=11 * 365)
    assert root.thumbprint == ca.thumbprint(root_cert) and issuing.serial == ca.serial_hex(issuing_cert)
    assert issuing.subject == issuing_cert.subject.rfc4514_string()


def test_init_ca_twice_changes_nothing():
    first_root, first_issuing, _ = ca.init_ca(organisation_name="Contoso", root_key_size=3072, issuing_key_size=2048)

    root, issuing, created = ca.init_ca(organisation_name="Other", root_key_size=3072, issuing_key_size=2048)

    assert created is False
    assert (root.pk, issuing.pk) == (first_root.pk, first_issuing.pk)
    assert CertificateAuthority.objects.count() == 2


def test_init_ca_refuses_when_only_one_ca_is_active():
    CertificateAuthorityFactory()

    with pytest.raises(ca.CaError, match="Only the Root CA is active"):
        ca.init_ca(organisation_name="Contoso")


def test_long_organisation_name_fits_the_common_name():
    root, _issuing, _ = ca.init_ca(organisation_name="X" * 200, root_key_size=3072, issuing_key_size=2048)

    common_name = ca.certificate_of(root).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert len(common_name) <= 64 and common_name.endswith(" Root CA")


def test_init_ca_command_creates_with_default_key_sizes_then_does_nothing(organisation):
    out = StringIO()
    call_command("init_ca", stdout=out)

    root_cert, issuing_cert = ca.active_chain()
    assert "Created the certificate authority" in out.getvalue()
    assert root_cert.public_key().key_size == 4096 and issuing_cert.public_key().key_size == 3072
    assert f"{organisation.name} Root CA" in out.getvalue()

    again = StringIO()
    call_command("init_ca", stdout=again)

    assert "already exists; nothing to do" in again.getvalue()
    assert CertificateAuthority.objects.count() == 2


def test_active_chain_without_ca_raises_not_initialised():
    with pytest.raises(ca.CaNotInitialised):
        ca.active_chain()


# --- keys at rest -------------------------------------------------------------------------------

def test_ca_keys_are_stored_encrypted(chain):
    for authority in chain:
        stored = authority.encrypted_key_pem.encode()
        assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(stored, password=None)
        key = serialization.load_pem_private_key(stored, password=PASSPHRASE.encode())
        assert key.public_key().public_numbers() == ca.certificate_of(authority).public_key().public_numbers()


def test_decrypted_key_is_cached(chain):
    _root, issuing = chain
    reloaded = CertificateAuthority.objects.get(pk=issuing.pk)

    assert ca.private_key_of(issuing) is ca.private_key_of(reloaded)


def test_wrong_passphrase_fails_the_key_check(chain, settings):
    assert checks.check_ca_keys_decrypt(None) == []

    settings.CA_KEY_PASSPHRASE = "another passphrase entirely, not the one used"

    errors = checks.check_ca_keys_decrypt(None)
    assert [error.id for error in errors] == ["enrollment.E002", "enrollment.E002"]
    assert PASSPHRASE not in str(errors) and settings.CA_KEY_PASSPHRASE not in str(errors)
    with pytest.raises(ca.CaKeyError):
        ca.issue_device_certificate(device_key().public_key(), "DEVICE")


def test_development_passphrase_comes_from_secret_key(settings):
    settings.CA_KEY_PASSPHRASE = ""
    create_ca_chain()
    assert checks.check_ca_keys_decrypt(None) == []

    settings.SECRET_KEY = "a different secret key for this test only"

    assert {error.id for error in checks.check_ca_keys_decrypt(None)} == {"enrollment.E002"}


def test_key_not_matching_its_certificate_fails_the_key_check():
    root, _issuing = create_ca_chain()
    root.encrypted_key_pem = ca.encrypt_key(rsa_key(25))
    root.save()

    assert [error.id for error in checks.check_ca_keys_decrypt(None)] == ["enrollment.E003"]


def test_deploy_check_requires_a_passphrase(settings):
    settings.CA_KEY_PASSPHRASE = ""
    assert [error.id for error in checks.check_ca_passphrase(None)] == ["enrollment.E001"]

    settings.CA_KEY_PASSPHRASE = "short"
    assert [error.id for error in checks.check_ca_passphrase(None)] == ["enrollment.W001"]

    settings.CA_KEY_PASSPHRASE = PASSPHRASE
    assert checks.check_ca_passphrase(None) == []


def test_deploy_check_is_registered_for_check_deploy(settings):
    from django.core.checks import registry

    settings.CA_KEY_PASSPHRASE = ""
    ids = {message.id for message in registry.run_checks(tags=["security"], include_deployment_checks=True)}

    assert "enrollment.E001" in ids


# --- device certificates ------------------------------------------------------------------------

def test_issued_certificate_has_the_fields_windows_expects(chain, settings):
    settings.DEVICE_CERT_VALIDITY_DAYS = 365
    root, issuing = chain
    key = device_key()
    before = datetime.now(UTC)

    cert = ca.issue_device_certificate(key.public_key(), "1E08C6E95D8BB843B1278FF45BC60CC6")

    assert cert.subject.rfc4514_string() == "CN=1E08C6E95D8BB843B1278FF45BC60CC6"
    assert cert.issuer == ca.certificate_of(issuing).subject
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    # A day back for a device clock that trails ours; the lifetime still counts from now.
    assert before - timedelta(days=1, seconds=5) <= cert.not_valid_before_utc <= before - timedelta(hours=23)
    assert abs(cert.not_valid_after_utc - (before + timedelta(days=365))) < timedelta(minutes=1)
    constraints = basic_constraints(cert)
    assert constraints.critical and constraints.value.ca is False
    key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature and key_usage.value.key_encipherment
    assert not key_usage.value.key_cert_sign and not key_usage.value.content_commitment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = ca.certificate_of(issuing).extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest


def test_issued_certificate_chains_to_the_root(chain):
    root, issuing = chain

    cert = ca.issue_device_certificate(device_key().public_key(), "DEVICE-1")

    cert.verify_directly_issued_by(ca.certificate_of(issuing))
    ca.certificate_of(issuing).verify_directly_issued_by(ca.certificate_of(root))
    ca.certificate_of(root).verify_directly_issued_by(ca.certificate_of(root))


def test_issued_certificates_get_random_serials(chain):
    first = ca.issue_device_certificate(device_key().public_key(), "DEVICE-1")
    second = ca.issue_device_certificate(device_key().public_key(), "DEVICE-1")

    assert first.serial_number != second.serial_number
    assert first.serial_number.bit_length() > 64


def test_validity_comes_from_the_argument_or_the_setting(chain, settings):
    settings.DEVICE_CERT_VALIDITY_DAYS = 30
    now = datetime.now(UTC)

    from_setting = ca.issue_device_certificate(device_key().public_key(), "DEVICE")
    from_argument = ca.issue_device_certificate(device_key().public_key(), "DEVICE", validity_days=90)

    assert abs(from_setting.not_valid_after_utc - (now + timedelta(days=30))) < timedelta(minutes=1)
    assert abs(from_argument.not_valid_after_utc - (now + timedelta(days=90))) < timedelta(minutes=1)


def test_device_certificate_never_outlives_the_issuing_ca():
    root = CertificateAuthorityFactory()
    issuing = CertificateAuthorityFactory(issuing=True, issuer=root, validity_days=10)

    cert = ca.issue_device_certificate(device_key().public_key(), "DEVICE", validity_days=365)

    assert cert.not_valid_after_utc == ca.certificate_of(issuing).not_valid_after_utc


def test_issuing_without_a_ca_raises_not_initialised():
    with pytest.raises(ca.CaNotInitialised):
        ca.issue_device_certificate(device_key().public_key(), "DEVICE")


@pytest.mark.parametrize("common_name", ["", "x" * 65, "bad\x00name"])
def test_issuing_refuses_a_bad_common_name(chain, common_name):
    with pytest.raises(ValueError):
        ca.issue_device_certificate(device_key().public_key(), common_name)


def test_issuing_refuses_a_small_key(chain):
    with pytest.raises(ValueError):
        ca.issue_device_certificate(rsa_key(21, bits=1024).public_key(), "DEVICE")


def test_verify_issued_accepts_our_certificates_only(chain):
    ours = ca.issue_device_certificate(device_key().public_key(), "DEVICE")
    root_cert, issuing_cert = ca.active_chain()

    assert ca.verify_issued(ours) is True
    assert ca.verify_issued(issuing_cert) is False  # signed by the root, not by the issuing CA
    _other_root, _root_key, other_issuing, other_issuing_key = ca_pair()
    foreign = (
        x509.CertificateBuilder().subject_name(ours.subject).issuer_name(issuing_cert.subject)
        .public_key(device_key().public_key()).serial_number(1)
        .not_valid_before(ours.not_valid_before_utc).not_valid_after(ours.not_valid_after_utc)
        .sign(other_issuing_key, hashes.SHA256())
    )
    assert ca.verify_issued(foreign) is False  # same issuer name, another key


def test_verify_issued_without_ca_is_false(chain):
    cert = ca.issue_device_certificate(device_key().public_key(), "DEVICE")
    CertificateAuthority.objects.all().delete()

    assert ca.verify_issued(cert) is False


def test_thumbprint_and_serial_are_uppercase_hex(chain):
    cert = ca.issue_device_certificate(device_key().public_key(), "DEVICE")

    assert ca.thumbprint(cert) == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert len(ca.thumbprint(cert)) == 40
    assert int(ca.serial_hex(cert), 16) == cert.serial_number
    assert ca.serial_hex(cert) == ca.serial_hex(cert).upper() and len(ca.serial_hex(cert)) % 2 == 0


# --- import_ca ----------------------------------------------------------------------------------

def test_import_ca_from_pem_files(tmp_path, monkeypatch):
    root, root_key, issuing, issuing_key = ca_pair()
    monkeypatch.setenv("CA_IMPORT_PASSWORD", "file password")
    out = StringIO()

    call_command(
        "import_ca", "--root-cert", write(tmp_path, "root.pem", pem(root)),
        "--root-key", write(tmp_path, "root.key", pem(root_key, b"file password")),
        "--issuing-cert", write(tmp_path, "issuing.pem", pem(issuing)),
        "--issuing-key", write(tmp_path, "issuing.key", pem(issuing_key)), stdout=out,
    )

    assert "Imported the certificate authority" in out.getvalue()
    assert ca.active_chain() == (root, issuing)
    stored_root, stored_issuing = ca.active_authorities()
    assert ca.private_key_of(stored_root).private_numbers() == root_key.private_numbers()
    assert ca.private_key_of(stored_issuing).private_numbers() == issuing_key.private_numbers()
    assert b"file password" not in stored_root.encrypted_key_pem.encode()
    cert = ca.issue_device_certificate(device_key().public_key(), "DEVICE")
    cert.verify_directly_issued_by(issuing)


def test_import_ca_from_pkcs12_without_root_key(tmp_path, monkeypatch):
    root, _root_key, issuing, issuing_key = ca_pair()
    p12 = pkcs12.serialize_key_and_certificates(
        b"issuing", issuing_key, issuing, [root], serialization.BestAvailableEncryption(b"p12 password"))
    monkeypatch.setenv("P12_PASSWORD", "p12 password")

    call_command("import_ca", "--pkcs12", write(tmp_path, "issuing.p12", p12), "--password-env", "P12_PASSWORD",
                 stdout=StringIO())

    stored_root, stored_issuing = ca.active_authorities()
    assert stored_root.thumbprint == ca.thumbprint(root) and stored_root.encrypted_key_pem == ""
    assert stored_issuing.thumbprint == ca.thumbprint(issuing)
    assert checks.check_ca_keys_decrypt(None) == []


def test_import_ca_from_two_pkcs12_files(tmp_path, monkeypatch):
    root, root_key, issuing, issuing_key = ca_pair()
    encryption = serialization.BestAvailableEncryption(b"pw")
    monkeypatch.setenv("CA_IMPORT_PASSWORD", "pw")

    call_command(
        "import_ca",
        "--pkcs12", write(tmp_path, "i.p12", pkcs12.serialize_key_and_certificates(b"i", issuing_key, issuing, None, encryption)),
        "--root-pkcs12", write(tmp_path, "r.p12", pkcs12.serialize_key_and_certificates(b"r", root_key, root, None, encryption)),
        stdout=StringIO(),
    )

    stored_root, _stored_issuing = ca.active_authorities()
    assert ca.private_key_of(stored_root).private_numbers() == root_key.private_numbers()


def test_import_ca_with_wrong_pkcs12_password_fails_clearly(tmp_path, monkeypatch):
    root, _root_key, issuing, issuing_key = ca_pair()
    encryption = serialization.BestAvailableEncryption(b"right")
    p12 = pkcs12.serialize_key_and_certificates(b"i", issuing_key, issuing, [root], encryption)
    monkeypatch.setenv("CA_IMPORT_PASSWORD", "wrong")

    with pytest.raises(CommandError, match="wrong password"):
        call_command("import_ca", "--pkcs12", write(tmp_path, "i.p12", p12))
    assert not CertificateAuthority.objects.exists()


def test_import_ca_refuses_a_key_that_does_not_match(tmp_path):
    root, _root_key, issuing, _issuing_key = ca_pair()

    with pytest.raises(CommandError, match="issuing CA private key does not match its certificate"):
        call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root)),
                     "--issuing-cert", write(tmp_path, "i.pem", pem(issuing)),
                     "--issuing-key", write(tmp_path, "i.key", pem(rsa_key(32))))
    assert not CertificateAuthority.objects.exists()


def test_import_ca_refuses_a_root_key_that_does_not_match(tmp_path):
    root, _root_key, issuing, issuing_key = ca_pair()

    with pytest.raises(CommandError, match="root CA private key does not match"):
        call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root)),
                     "--root-key", write(tmp_path, "r.key", pem(rsa_key(32))),
                     "--issuing-cert", write(tmp_path, "i.pem", pem(issuing)),
                     "--issuing-key", write(tmp_path, "i.key", pem(issuing_key)))


def test_import_ca_refuses_an_issuing_ca_not_signed_by_the_root(tmp_path):
    root, _root_key, issuing, issuing_key = ca_pair(signer_index=33)

    with pytest.raises(CommandError, match="not signed by the root"):
        call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root)),
                     "--issuing-cert", write(tmp_path, "i.pem", pem(issuing)),
                     "--issuing-key", write(tmp_path, "i.key", pem(issuing_key)))
    assert not CertificateAuthority.objects.exists()


def test_import_ca_refuses_a_non_ca_certificate(tmp_path, chain):
    device = ca.issue_device_certificate(device_key().public_key(), "DEVICE")
    root_cert, _issuing_cert = ca.active_chain()

    with pytest.raises(CommandError, match="not a CA certificate"):
        call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root_cert)),
                     "--issuing-cert", write(tmp_path, "i.pem", pem(device)),
                     "--issuing-key", write(tmp_path, "i.key", pem(device_key())), "--replace")


def test_import_ca_does_not_replace_an_active_ca_without_replace(tmp_path, chain):
    root, _root_key, issuing, issuing_key = ca_pair()
    arguments = ["import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root)),
                 "--issuing-cert", write(tmp_path, "i.pem", pem(issuing)),
                 "--issuing-key", write(tmp_path, "i.key", pem(issuing_key))]

    with pytest.raises(CommandError, match="--replace"):
        call_command(*arguments)
    assert ca.active_authorities() == chain

    call_command(*arguments, "--replace", stdout=StringIO())

    assert ca.active_chain() == (root, issuing)
    assert CertificateAuthority.objects.filter(active=False).count() == 2
    again = StringIO()
    call_command(*arguments, stdout=again)
    assert "already active; nothing to do" in again.getvalue()


def test_import_ca_runs_when_the_stored_keys_cannot_be_decrypted(tmp_path, chain, settings):
    settings.CA_KEY_PASSPHRASE = "the old passphrase was lost, this is a new one"
    root, _root_key, issuing, issuing_key = ca_pair()
    assert checks.check_ca_keys_decrypt(None)
    assert ImportCaCommand.requires_system_checks == []  # so enrollment.E002 cannot block the way out

    call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", pem(root)),
                 "--issuing-cert", write(tmp_path, "i.pem", pem(issuing)),
                 "--issuing-key", write(tmp_path, "i.key", pem(issuing_key)), "--replace", stdout=StringIO())

    assert ca.active_chain() == (root, issuing)
    assert checks.check_ca_keys_decrypt(None) == []


def test_import_ca_reports_an_unreadable_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_ca", "--pkcs12", str(tmp_path / "missing.p12"))
    with pytest.raises(CommandError, match="readable certificate"):
        call_command("import_ca", "--root-cert", write(tmp_path, "r.pem", b"-----BEGIN CERTIFICATE-----\nxx"),
                     "--issuing-cert", write(tmp_path, "i.pem", base64.b64encode(b"junk")),
                     "--issuing-key", write(tmp_path, "i.key", b"junk"))
