"""`manage.py doctor`: each check's OK and FAIL (or WARN) path, against local servers only: a TLS
server on 127.0.0.1 with a generated certificate, the aiosmtpd server, a fixture resolver instead of
DNS (never a lookup on the internet)."""
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO
from unittest.mock import patch

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command

from accounts.models import Organisation
from invitations.models import InvitationEmail
from mdmportal import doctor
from mdmportal.doctor import FAIL, OK, WARN, Doctor
from tests.factories import InvitationEmailFactory, OrganisationFactory, UserFactory
from tests.factories_enrollment import CertificateAuthorityFactory
from tests.services import free_port

PASSPHRASE = "a-long-random-passphrase-for-the-tests"


# --- a local TLS server with a certificate we make -------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(tmp_path, names, *, days=90):
    """A CA (its PEM path) and a server certificate for `names` valid `days` more days."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("Doctor Test CA")).issuer_name(_name("Doctor Test CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class TlsServer:
    """Completes TLS handshakes on 127.0.0.1 and hangs up; enough for a certificate check."""

    def __init__(self, cert_file, key_file):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


NAMES = ["enroll.test", "enterpriseenrollment.example.com"]


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path, NAMES)


@pytest.fixture
def tls_server(pki):
    _ca, cert, key = pki
    server = TlsServer(cert, key)
    yield server
    server.stop()


def fixture_resolver(records):
    def resolve(host):
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return records[host]
    return resolve


@pytest.fixture
def deployment(settings, db, tls_server, pki):
    """A deployment that passes every check: https names, DNS, a trusted certificate, our CA, SMTP."""
    settings.PORTAL_URL = settings.ENROLLMENT_URL = f"https://enroll.test:{tls_server.port}"
    settings.ALLOWED_HOSTS = ["enroll.test"]
    settings.CA_KEY_PASSPHRASE = PASSPHRASE
    settings.REDIS_URL = ""
    OrganisationFactory(enrollment_base_url=f"https://enroll.test:{tls_server.port}")
    CertificateAuthorityFactory(issuing=True)
    UserFactory(email="alice@example.com")
    return tls_server


def make_doctor(deployment, pki, *, records=None, **kwargs):
    records = records if records is not None else {name: ["127.0.0.1"] for name in NAMES}
    kwargs.setdefault("tls_context", ssl.create_default_context(cafile=str(pki[0])))
    return Doctor(resolve=fixture_resolver(records), https_port=deployment.port, timeout=2, **kwargs)


def results(checker, check):
    return [(r.status, r.message, r.fix) for r in getattr(checker, f"check_{check}")()]


def statuses(checker, check):
    return [r[0] for r in results(checker, check)]


# --- hosts ------------------------------------------------------------------------------------------

def test_hosts_pass_when_https_and_allowed(deployment, pki):
    assert set(statuses(make_doctor(deployment, pki), "hosts")) == {OK}


def test_hosts_fail_on_plain_http(deployment, pki, settings):
    settings.PORTAL_URL = "http://enroll.test"
    (status, message, fix), *_ = results(make_doctor(deployment, pki), "hosts")
    assert status == FAIL and "not https" in message and "https://" in fix


def test_hosts_fail_when_not_in_allowed_hosts(deployment, pki, settings):
    settings.ALLOWED_HOSTS = ["portal.test"]
    found = results(make_doctor(deployment, pki), "hosts")
    assert (FAIL, "PORTAL_URL host enroll.test is not in ALLOWED_HOSTS", "add enroll.test to ALLOWED_HOSTS") in found


# --- DNS --------------------------------------------------------------------------------------------

def test_dns_passes_when_autodiscovery_name_points_at_the_enrollment_server(deployment, pki):
    assert statuses(make_doctor(deployment, pki), "dns") == [OK, OK]


def test_dns_fails_when_autodiscovery_name_is_missing(deployment, pki):
    checker = make_doctor(deployment, pki, records={"enroll.test": ["127.0.0.1"]})
    (_, _, _), (status, message, fix) = results(checker, "dns")
    assert status == FAIL and "enterpriseenrollment.example.com does not resolve" in message
    assert fix == "create a CNAME enterpriseenrollment.example.com -> enroll.test"


def test_dns_warns_when_autodiscovery_name_points_elsewhere(deployment, pki):
    checker = make_doctor(deployment, pki, records={"enroll.test": ["127.0.0.1"],
                                                    "enterpriseenrollment.example.com": ["127.0.0.2"]})
    assert statuses(checker, "dns") == [OK, WARN]


def test_dns_fails_when_enrollment_host_does_not_resolve(deployment, pki):
    assert statuses(make_doctor(deployment, pki, records={}), "dns") == [FAIL]


def test_dns_checks_the_domains_of_active_users_by_default(deployment, pki):
    UserFactory(email="bob@contoso.test")
    checker = make_doctor(deployment, pki)
    assert sorted(checker.email_domains()) == ["contoso.test", "example.com"]


def test_pinned_address_wins_over_the_resolver(deployment, pki):
    checker = make_doctor(deployment, pki, records={}, pinned={"enroll.test": "127.0.0.1"}, domains=[])
    assert statuses(checker, "dns")[0] == OK


# --- TLS --------------------------------------------------------------------------------------------

def test_tls_passes_with_a_trusted_certificate_for_each_name(deployment, pki):
    found = results(make_doctor(deployment, pki), "tls")
    assert [r[0] for r in found] == [OK, OK]
    assert "enroll.test" in found[0][1] and "enterpriseenrollment.example.com" in found[1][1]


def test_tls_fails_when_the_chain_is_not_trusted(deployment, pki):
    checker = make_doctor(deployment, pki, tls_context=ssl.create_default_context())  # system CAs only
    status, message, fix = results(checker, "tls")[0]
    assert status == FAIL and "not trusted" in message and "full chain" in fix


def test_tls_fails_when_the_certificate_does_not_name_the_host(deployment, pki, tmp_path):
    (tmp_path / "other").mkdir()
    ca, cert, key = make_pki(tmp_path / "other", ["other.test"])
    server = TlsServer(cert, key)
    try:
        checker = make_doctor(deployment, pki, tls_context=ssl.create_default_context(cafile=str(ca)))
        result = checker._check_certificate("enroll.test", "127.0.0.1", server.port)
    finally:
        server.stop()
    assert result.status == FAIL and "mismatch" in result.message.lower()


def test_tls_warns_when_the_certificate_expires_soon(deployment, pki):
    checker = make_doctor(deployment, pki, now=lambda: (datetime.now(UTC) + timedelta(days=80)).timestamp())
    status, message, fix = results(checker, "tls")[0]
    assert status == WARN and "expires" in message and "renew" in fix


def test_tls_fails_when_nothing_listens(deployment, pki):
    result = make_doctor(deployment, pki)._check_certificate("enroll.test", "127.0.0.1", free_port())
    assert result.status == FAIL and "cannot open TLS" in result.message


# --- clock ------------------------------------------------------------------------------------------

@pytest.mark.services
def test_clock_passes_when_in_step_with_the_database(deployment, pki, postgres):
    assert statuses(make_doctor(deployment, pki), "clock") == [OK]


@pytest.mark.services
def test_clock_fails_when_two_minutes_off_the_database(deployment, pki, postgres):
    import time

    checker = make_doctor(deployment, pki, now=lambda: time.time() + 120)
    status, message, fix = results(checker, "clock")[0]
    assert status == FAIL and "ahead of the database server" in message and "NTP" in fix


# --- CA ---------------------------------------------------------------------------------------------

def test_ca_passes_with_passphrase_and_a_decryptable_key(deployment, pki):
    assert set(statuses(make_doctor(deployment, pki), "ca")) == {OK}


def test_ca_fails_without_a_passphrase(deployment, pki, settings):
    settings.CA_KEY_PASSPHRASE = ""
    assert statuses(make_doctor(deployment, pki), "ca")[0] == FAIL


def test_ca_fails_when_the_key_cannot_be_decrypted(deployment, pki, settings):
    settings.CA_KEY_PASSPHRASE = "another-passphrase-that-is-long-enough"
    found = results(make_doctor(deployment, pki), "ca")
    assert found[-1][0] == FAIL and "cannot be decrypted" in found[-1][1]


def test_ca_fails_when_there_is_none(settings, db, tls_server, pki):
    settings.CA_KEY_PASSPHRASE = PASSPHRASE
    found = results(make_doctor(tls_server, pki), "ca")
    assert found[-1] == (FAIL, "no certificate authority", "run `manage.py init_ca` or `manage.py import_ca`")


def test_ca_warns_when_it_expires_before_device_certificates_would(settings, db, tls_server, pki):
    settings.CA_KEY_PASSPHRASE = PASSPHRASE
    root = CertificateAuthorityFactory()
    CertificateAuthorityFactory(issuing=True, issuer=root, validity_days=100)
    assert WARN in statuses(make_doctor(tls_server, pki), "ca")


# --- SMTP -------------------------------------------------------------------------------------------

@pytest.fixture
def smtp_settings(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_HOST_USER = "127.0.0.1", ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    return settings


def test_smtp_passes_when_the_server_answers_ehlo(deployment, pki, smtp_settings, smtp_server):
    smtp_settings.EMAIL_PORT = smtp_server.port
    assert results(make_doctor(deployment, pki), "smtp") == [(OK, f"127.0.0.1:{smtp_server.port} answers", "")]


def test_smtp_fails_when_nothing_listens(deployment, pki, smtp_settings):
    smtp_settings.EMAIL_PORT = free_port()
    status, message, fix = results(make_doctor(deployment, pki), "smtp")[0]
    assert status == FAIL and "cannot talk to" in message and "EMAIL_URL" in fix


def test_smtp_fails_when_starttls_is_configured_but_not_offered(deployment, pki, smtp_settings, smtp_server):
    smtp_settings.EMAIL_PORT, smtp_settings.EMAIL_USE_TLS = smtp_server.port, True
    assert statuses(make_doctor(deployment, pki), "smtp") == [FAIL]


def test_smtp_warns_when_emails_go_to_the_console_in_development(deployment, pki, settings):
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert statuses(make_doctor(deployment, pki), "smtp") == [WARN]


def test_smtp_fails_when_emails_would_go_to_the_console_outside_debug(deployment, pki, settings):
    """Invitation links and PINs printed to stdout end in the journal."""
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    status, message, fix = results(make_doctor(deployment, pki), "smtp")[0]
    assert status == FAIL and "EMAIL_URL" in fix


# --- broker and beat --------------------------------------------------------------------------------

def test_broker_warns_without_redis(deployment, pki):
    assert statuses(make_doctor(deployment, pki), "broker") == [WARN]


def test_broker_fails_when_redis_does_not_answer(deployment, pki, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    status, message, fix = results(make_doctor(deployment, pki), "broker")[0]
    assert status == FAIL and "cannot reach the broker" in message and "Redis" in fix


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_broker_passes_when_a_worker_answers_the_ping(settings, celery_worker, redis_url, tls_server, pki):
    settings.REDIS_URL = redis_url
    found = results(make_doctor(tls_server, pki), "broker")
    assert [r[0] for r in found] == [OK, OK] and "worker(s) answer" in found[1][1]


def test_beat_passes_with_the_schedule(deployment, pki):
    assert statuses(make_doctor(deployment, pki), "beat") == [OK]


def test_beat_fails_when_the_sweep_is_not_scheduled(deployment, pki, settings):
    settings.CELERY_BEAT_SCHEDULE = {k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items()
                                     if v["task"] != "invitations.tasks.sweep_queued_emails"}
    status, message, _fix = results(make_doctor(deployment, pki), "beat")[0]
    assert status == FAIL and "sweep_queued_emails" in message


def test_beat_warns_when_emails_stay_queued_past_the_sweep(deployment, pki, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    InvitationEmailFactory(queued_at=datetime.now(UTC) - timedelta(hours=1))
    assert statuses(make_doctor(deployment, pki), "beat") == [OK, WARN]


# --- migrations and the command ---------------------------------------------------------------------

def test_migrations_pass_when_applied(deployment, pki):
    assert statuses(make_doctor(deployment, pki), "migrations") == [OK]


def test_migrations_fail_when_some_are_not_applied(deployment, pki):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    pending = MigrationExecutor(connection).loader.graph.leaf_nodes()[:1]
    with patch.object(MigrationExecutor, "migration_plan", autospec=True,
                      return_value=[(type("M", (), {"app_label": pending[0][0], "name": pending[0][1]}), False)]):
        status, message, fix = results(make_doctor(deployment, pki), "migrations")[0]
    assert status == FAIL and "1 migration(s) not applied" in message and fix == "run `manage.py migrate`"


def test_command_prints_a_line_per_check_and_exits_non_zero_on_failure(deployment, pki, settings):
    settings.CA_KEY_PASSPHRASE = ""
    out = StringIO()
    with patch.object(doctor, "resolve_host", autospec=True, side_effect=fixture_resolver(
            {name: ["127.0.0.1"] for name in NAMES})):
        with pytest.raises(CommandError, match="check\\(s\\) failed"):
            call_command("doctor", "--ca-file", str(pki[0]), "--domain", "example.com", "--timeout", "2",
                         stdout=out, no_color=True)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("OK   database:")
    assert any(line.startswith("FAIL ca: CA_KEY_PASSPHRASE is not set") and " — fix: " in line for line in lines)
    assert all(line.split()[0] in (OK, WARN, FAIL) for line in lines)


def test_command_writes_nothing(db, settings):
    settings.REDIS_URL = ""
    with patch.object(doctor, "resolve_host", autospec=True, side_effect=socket.gaierror("no DNS in tests")):
        with pytest.raises(CommandError):
            call_command("doctor", "--domain", "example.com", "--timeout", "1", stdout=StringIO())
    assert not Organisation.objects.exists()
    assert not InvitationEmail.objects.exists()


def test_command_refuses_a_malformed_resolve(db):
    with pytest.raises(CommandError, match="HOST:ADDRESS"):
        call_command("doctor", "--resolve", "enroll.test", stdout=StringIO())
