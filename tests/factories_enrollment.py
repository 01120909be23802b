"""One factory per model of the enrollment app, and of the pki app's CertificateAuthority."""
import functools
import secrets
import urllib.parse
from datetime import UTC, datetime, timedelta

import factory
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.hashers import make_password
from factory.django import DjangoModelFactory

from enrollment.models import (
    Device,
    EntraIdentity,
    EntraKeyAlert,
    EntraSettings,
    JwksSet,
    PinEnrollment,
    PinEnrollmentFailure,
    RegistrationPin,
)
from management import reconcile
from management.models import (
    ConfigurationGroup,
    ConfigurationRevision,
    DeviceCommand,
    DeviceReconciliation,
    DeviceSettingState,
    GroupSetting,
    ManagementSession,
)
from pki import ca
from pki.models import CertificateAuthority

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


class DeviceFactory(DjangoModelFactory):
    """An enrolled PC of a user; traits for the other kinds and states."""

    class Meta:
        model = Device

    device_id = factory.Sequence(lambda n: f"{n:032X}")
    hw_dev_id = factory.Sequence(lambda n: f"{n + 1:064X}")
    name = factory.Sequence(lambda n: f"PC-{n:04d}")
    os_version = "10.0.22631.4460"
    os_edition = 48
    kind = Device.Kind.PC
    enrollment_type = Device.EnrollmentType.FULL
    method = Device.Method.ONPREMISE
    user = factory.SubFactory("tests.factories.UserFactory")
    upn = factory.LazyAttribute(lambda o: o.user.email if o.user else "")
    certificate_serial = factory.Sequence(lambda n: f"{n + 0x1000:040X}")
    certificate_thumbprint = factory.Sequence(lambda n: f"{n + 0x2000:040X}")
    certificate_not_after = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=365))
    context_items = factory.LazyAttribute(lambda o: [["DeviceID", o.device_id], ["EnrollmentType", o.enrollment_type],
                                                     ["DeviceName", o.name], ["MAC", "00-15-5D-01-02-03"],
                                                     ["MAC", "00-15-5D-01-02-04"]])
    appsrv_digest = "bm90IGEgcmVhbCBkaWdlc3Q="
    appsrv_nonce = "AAECAwQFBgcICQoLDA0ODw=="
    client_digest = "bm90IGEgcmVhbCBkaWdlc3Q="
    client_nonce = "AAECAwQFBgcICQoLDA0ODw=="

    class Params:
        hololens = factory.Trait(kind=Device.Kind.HOLOLENS, os_edition=136, name=factory.Sequence(lambda n: f"HOLOLENS-{n}"))
        device_enrollment = factory.Trait(enrollment_type=Device.EnrollmentType.DEVICE)
        federated = factory.Trait(method=Device.Method.FEDERATED)
        entra = factory.Trait(method=Device.Method.ENTRA, entra_device_id=factory.Faker("uuid4"))
        replaced = factory.Trait(status=Device.Status.REPLACED, revoked_at=factory.LazyFunction(lambda: datetime.now(UTC)))
        retired = factory.Trait(status=Device.Status.RETIRED)


class RegistrationPinFactory(DjangoModelFactory):
    """A usable PIN; the clear value is `raw` (default "12345678"), stored hashed like the real thing."""

    class Meta:
        model = RegistrationPin
        exclude = ["raw"]

    raw = "12345678"
    user = factory.SubFactory("tests.factories.UserFactory")
    pin_hash = factory.LazyAttribute(lambda o: make_password(o.raw))
    expires_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=7))

    class Params:
        expired = factory.Trait(expires_at=factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(minutes=1)))
        revoked = factory.Trait(revoked_at=factory.LazyFunction(lambda: datetime.now(UTC)))


PPKG_PIN = "ABCDE-FGHJK-MNPQR-STUVW"


class PinEnrollmentFactory(DjangoModelFactory):
    """A usable provisioning-package PIN enrollment; its clear PIN is `raw` (PPKG_PIN), stored hashed."""

    class Meta:
        model = PinEnrollment
        exclude = ["raw"]
        skip_postgeneration_save = True

    raw = PPKG_PIN
    name = factory.Sequence(lambda n: f"Lab {n}")
    upn = factory.Sequence(lambda n: f"enroll-lab-{n}@example.com")
    pin_hash = factory.LazyAttribute(lambda o: make_password(o.raw))
    owner = factory.SubFactory("tests.factories.UserFactory")
    expires_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=90))
    max_devices = 50

    class Params:
        expired = factory.Trait(expires_at=factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(minutes=1)))
        revoked = factory.Trait(revoked_at=factory.LazyFunction(lambda: datetime.now(UTC)))
        locked = factory.Trait(lockouts=1, locked_until=factory.LazyFunction(
            lambda: datetime.now(UTC) + timedelta(minutes=15)))

    @factory.post_generation
    def configuration_groups(pin_enrollment, create, groups, **kwargs):
        if create and groups:
            pin_enrollment.configuration_groups.add(*groups)


class PinEnrollmentFailureFactory(DjangoModelFactory):
    """Wrong PINs for a PIN enrollment from one address; `locked=True` for an address locked out."""

    class Meta:
        model = PinEnrollmentFailure

    pin_enrollment = factory.SubFactory(PinEnrollmentFactory)
    address = factory.Sequence(lambda n: f"198.51.100.{n % 250 + 1}")
    failed_attempts = 3
    last_failure_at = factory.LazyFunction(lambda: datetime.now(UTC))

    class Params:
        locked = factory.Trait(failed_attempts=0, lockouts=1, locked_until=factory.LazyFunction(
            lambda: datetime.now(UTC) + timedelta(minutes=15)))

def certified_device(key_index=0, **kwargs):
    """An enrolled Device holding a real certificate from the active issuing CA (create_ca_chain()
    first): (device, certificate)."""
    device_id = kwargs.pop("device_id", None) or secrets.token_hex(16).upper()
    cert = ca.issue_device_certificate(rsa_key(10 + key_index).public_key(), device_id)
    device = DeviceFactory(device_id=device_id, certificate_serial=ca.serial_hex(cert),
                           certificate_thumbprint=ca.thumbprint(cert),
                           certificate_not_after=cert.not_valid_after_utc, **kwargs)
    return device, cert


def certificate_header(cert):
    """The X-SSL-Client-Cert value nginx sends ($ssl_client_escaped_cert: URL-escaped PEM)."""
    return urllib.parse.quote(cert.public_bytes(serialization.Encoding.PEM).decode())


class ManagementSessionFactory(DjangoModelFactory):
    class Meta:
        model = ManagementSession

    device = factory.SubFactory(DeviceFactory)
    session_id = factory.Sequence(lambda n: f"{n + 1:X}")
    auth = ManagementSession.Auth.CERTIFICATE


class DeviceCommandFactory(DjangoModelFactory):
    """A queued Get; traits for the other states."""

    class Meta:
        model = DeviceCommand

    device = factory.SubFactory(DeviceFactory)
    verb = DeviceCommand.Verb.GET
    target = "./DevDetail/SwV"
    source = "test"
    expires_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=30))

    class Params:
        reboot = factory.Trait(verb=DeviceCommand.Verb.EXEC, target="./Device/Vendor/MSFT/Reboot/RebootNow",
                               format="null", source="console:reboot")
        sent = factory.Trait(status=DeviceCommand.Status.SENT, attempts=1,
                             sent_at=factory.LazyFunction(lambda: datetime.now(UTC)),
                             session=factory.SubFactory(ManagementSessionFactory, device=factory.SelfAttribute("..device")),
                             msg_id=1, cmd_id=factory.Sequence(lambda n: n + 2))
        succeeded = factory.Trait(status=DeviceCommand.Status.SUCCEEDED, status_code=200,
                                  completed_at=factory.LazyFunction(lambda: datetime.now(UTC)))
        expired = factory.Trait(expires_at=factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(minutes=1)))


class ConfigurationGroupFactory(DjangoModelFactory):
    """A group without members or settings; `everyone=True` for a rule matching every enrolled device."""

    class Meta:
        model = ConfigurationGroup
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Group {n}")
    priority = 100

    class Params:
        everyone = factory.Trait(rule_enabled=True)

    @factory.post_generation
    def members(group, create, devices, **kwargs):
        if create and devices:
            group.devices.add(*devices)


class GroupSettingFactory(DjangoModelFactory):
    """A catalogue setting (camera blocked); traits for TenantLockdown and a raw OMA-URI."""

    class Meta:
        model = GroupSetting

    group = factory.SubFactory(ConfigurationGroupFactory)
    key = "allow_camera"
    value = "0"

    class Params:
        tenant_lockdown = factory.Trait(key="tenant_lockdown", value="true")
        raw = factory.Trait(key="", loc_uri="./Device/Vendor/MSFT/Policy/Config/Bluetooth/AllowAdvertising",
                            format="int", value="0")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        setting = model_class(*args, **kwargs)
        if setting.key:
            setting.loc_uri = "x"  # replaced by clean() from the catalogue
        setting.full_clean()
        setting.save()
        return setting


class DeviceSettingStateFactory(DjangoModelFactory):
    class Meta:
        model = DeviceSettingState

    device = factory.SubFactory(DeviceFactory)
    loc_uri = "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"
    label = "Allow camera"
    format = "int"
    value = "0"
    removal = GroupSetting.Removal.DELETE
    command = factory.SubFactory(DeviceCommandFactory, device=factory.SelfAttribute("..device"), verb="Replace",
                                 target=factory.SelfAttribute("..loc_uri"), format="int", data="0")


class ConfigurationRevisionFactory(DjangoModelFactory):
    """The one row (pk 1, which the migration creates: get_or_create)."""

    class Meta:
        model = ConfigurationRevision
        django_get_or_create = ("id",)

    id = 1
    number = 0


class DeviceReconciliationFactory(DjangoModelFactory):
    """A device reconciled at the current revision with its present inputs, neither it nor its user a
    member of any group (`memberships` as management/checkin_sql.memberships_sql writes that)."""

    class Meta:
        model = DeviceReconciliation

    device = factory.SubFactory(DeviceFactory)
    revision = factory.LazyFunction(lambda: ConfigurationRevisionFactory().number)
    memberships = "|"
    fingerprint = factory.LazyAttribute(lambda mark: reconcile.fingerprint(mark.device))


# Entra ID enrollment.

TEST_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TEST_CLIENT_ID = "0000000a-0000-0000-c000-000000000000"
TEST_APP_ID_URI = "https://enterpriseenrollment.contoso.com"


def public_jwk(key, kid):
    """The public JWK of a test RSA key, as Microsoft publishes its keys."""
    import jwt

    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": jwk["n"], "e": jwk["e"]}


class EntraSettingsFactory(DjangoModelFactory):
    """Entra enrollment switched on for the test tenant and audiences (keys: JwksSetFactory)."""

    class Meta:
        model = EntraSettings
        django_get_or_create = ("pk",)

    pk = 1
    enabled = True
    tenant_ids = factory.LazyFunction(lambda: [TEST_TENANT])
    audiences = factory.LazyFunction(lambda: [TEST_APP_ID_URI, TEST_CLIENT_ID])

    class Params:
        disabled = factory.Trait(enabled=False)


class JwksSetFactory(DjangoModelFactory):
    """An active set holding the public half of rsa_key(key_index) under `kid`."""

    class Meta:
        model = JwksSet
        exclude = ["key_index", "kid"]

    key_index = 40
    kid = "test-key-1"
    source = JwksSet.Source.UPLOAD
    document = factory.LazyAttribute(lambda o: {"keys": [public_jwk(rsa_key(o.key_index), o.kid)]})
    key_ids = factory.LazyAttribute(lambda o: [key["kid"] for key in o.document["keys"]])
    sha256 = factory.Sequence(lambda n: f"{n:064x}")

    class Params:
        inactive = factory.Trait(active=False)
        mirrored = factory.Trait(source=JwksSet.Source.MIRROR, source_url="http://keys.example.internal/keys")


class EntraKeyAlertFactory(DjangoModelFactory):
    class Meta:
        model = EntraKeyAlert

    kid = factory.Sequence(lambda n: f"rotated-key-{n}")

    class Params:
        resolved = factory.Trait(resolved_at=factory.LazyFunction(lambda: datetime.now(UTC)))


class EntraIdentityFactory(DjangoModelFactory):
    class Meta:
        model = EntraIdentity

    user = factory.SubFactory("tests.factories.UserFactory")
    tenant_id = TEST_TENANT
    object_id = factory.Sequence(lambda n: f"00000000-0000-0000-0000-{n:012x}")
