"""The documented production set-up, run for real: nginx from deploy/nginx.conf terminating TLS in front
of gunicorn as deploy/systemd/mdmportal-web.service starts it, with the environment of
deploy/mdmportal.env.example, and the device simulator enrolling and checking in over HTTPS with its
client certificate in the TLS handshake.

Only the values an operator edits (the lines marked EDIT in deploy/nginx.conf, gunicorn's address and
worker count, the environment's host names and secrets) are replaced; every other directive runs as
shipped. The test host name enterpriseenrollment.test is reached on 127.0.0.1 through the simulator's
--resolve, under a test CA the simulator is given with --ca-file.
"""
import grp
import http.client
import importlib.util
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import simulator as sim
from tests.services import ROOT, free_port, isolated, service_missing

# Tests that write through the server use the committed (transactional) test database; the others
# do without, since each flush of it costs seconds.
pytestmark = pytest.mark.services
with_database = pytest.mark.django_db(transaction=True)

HOST = "enterpriseenrollment.test"
DEPLOY = ROOT / "deploy"
DISCOVERY = "/EnrollmentServer/Discovery.svc"
ACME_TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
# The directives that make the set-up safe; the rendered configuration must still say exactly this.
SECURITY_DIRECTIVES = [
    "ssl_protocols TLSv1.2 TLSv1.3;",
    "ssl_verify_client optional_no_ca;",
    "client_max_body_size 2m;",
    "proxy_set_header Host $host;",
    "proxy_set_header X-Forwarded-Proto https;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;",
    "proxy_buffering on;",
    "gzip off;",
    "return 301 https://$host$request_uri;",
]


# --- rendering the shipped files ------------------------------------------------------------------

def replace_exactly(text, old, new, count=1, where="deploy/nginx.conf"):
    """`text` with `old` replaced; fails when the shipped file no longer has `old` `count` times, so
    that a change to the shipped file cannot quietly leave the test running something else."""
    found = text.count(old)
    assert found == count, f"{where}: expected {old!r} {count} time(s), found {found}"
    return text.replace(old, new)


def render_nginx_site(*, https_port, http_port, upstream, certificate, key, static_root, webroot,
                      access_log):
    text = (DEPLOY / "nginx.conf").read_text()
    for old, new, count in [
        ("enterpriseenrollment.contoso.com portal.contoso.com;", f"{HOST};", 2),
        ("listen 80; ", f"listen 127.0.0.1:{http_port}; ", 1),
        ("listen [::]:80; ", "", 1),
        ("listen 443 ssl http2; ", f"listen 127.0.0.1:{https_port} ssl http2; ", 1),
        ("listen [::]:443 ssl http2; ", "", 1),
        ("/etc/ssl/mdmportal/fullchain.pem;", f"{certificate};", 1),
        ("/etc/ssl/mdmportal/privkey.pem;", f"{key};", 1),
        ("server 127.0.0.1:8000;", f"server {upstream};", 1),
        ("alias /srv/mdmportal/staticfiles/;", f"alias {static_root}/;", 1),
        ("root /var/www/html;", f"root {webroot};", 1),
        ("/var/log/nginx/mdmportal.access.log", str(access_log), 2),
    ]:
        text = replace_exactly(text, old, new, count)
    for directive in SECURITY_DIRECTIVES:
        assert directive in text, f"deploy/nginx.conf no longer says {directive!r}"
    return text


def nginx_main_config(folder, site):
    """What /etc/nginx/nginx.conf provides around a site, in a private folder (foreground, own logs,
    own temporary files)."""
    user = ""
    if os.geteuid() == 0:  # the workers would otherwise drop to nobody and miss the private folder
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp = "\n".join(f"    {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi",
                                                                           "uwsgi", "scgi"))
    return f"""daemon off;
{user}
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} info;
events {{ worker_connections 64; }}
http {{
    access_log {folder / 'access.log'};
{temp}
    include {site};
}}
"""


def production_environment(overrides):
    """deploy/mdmportal.env.example (as systemd's EnvironmentFile= reads it) with `overrides`;
    a None value removes the variable."""
    env = {}
    for line in (DEPLOY / "mdmportal.env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    for name, value in overrides.items():
        assert value is None or name in env, f"deploy/mdmportal.env.example does not set {name}"
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def gunicorn_command(bind):
    """ExecStart of deploy/systemd/mdmportal-web.service, with this venv's gunicorn, our address and
    two workers (the test machine is small)."""
    unit = (DEPLOY / "systemd" / "mdmportal-web.service").read_text()
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(exec_start) == 1, "mdmportal-web.service must have one ExecStart="
    argv = shlex.split(exec_start[0].removeprefix("ExecStart="))
    assert argv[0].endswith("/gunicorn"), argv
    for option, value in (("--bind", bind), ("--workers", "2")):
        assert option in argv, f"mdmportal-web.service: ExecStart has no {option}"
        argv[argv.index(option) + 1] = value
    return [sys.executable, "-m", "gunicorn", *argv[1:]]


# --- a test PKI for the server's TLS certificate --------------------------------------------------

def write_tls_pki(folder):
    """A test CA and a server certificate for HOST: (ca.pem, fullchain.pem, privkey.pem)."""
    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdmportal deployment test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    paths[2].write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


# --- the running set-up ---------------------------------------------------------------------------

@dataclass
class Production:
    https_port: int
    http_port: int
    ca_file: Path
    env: dict
    ca_passphrase: str
    logs: list = field(default_factory=list)

    @property
    def url(self):
        return f"https://{HOST}:{self.https_port}"

    @property
    def resolve(self):
        return {(HOST, self.https_port): "127.0.0.1", (HOST, self.http_port): "127.0.0.1"}

    def simulator(self, email, password, **options):
        return sim.Simulator(self.url, email, password, ca_file=str(self.ca_file), resolve=self.resolve, **options)

    def connection(self, *, tls=True, source="127.0.0.1", timeout=10):
        """A raw HTTP/1.1 connection to nginx from `source` (any 127.x address), verifying HOST's
        certificate over TLS."""
        port = self.https_port if tls else self.http_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if not tls:
            connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        else:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            sock = context.wrap_socket(sock, server_hostname=HOST)
            connection = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=context)
        connection.sock = sock
        return connection

    def output(self):
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in self.logs
                         if log.exists())


def _stop(process, sig):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(argv, env, what):
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done


@pytest.fixture(scope="module")
def production(postgres, tmp_path_factory):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not nginx:
        service_missing("nginx is not installed (apt-get install nginx-light)")
    if importlib.util.find_spec("gunicorn") is None:
        service_missing("gunicorn is not installed in this Python environment")
    folder = tmp_path_factory.mktemp("production")
    ca_file, certificate, key = write_tls_pki(folder)
    https_port, http_port, web_port = free_port(), free_port(), free_port()
    url = f"https://{HOST}:{https_port}"
    ca_passphrase = secrets.token_urlsafe(32)
    db = postgres
    env = production_environment({
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CA_KEY_PASSPHRASE": ca_passphrase,
        "DATABASE_URL": (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                         f"/{db['NAME']}"),
        "REDIS_URL": None,  # Celery tasks in-process: nothing here needs the worker
        # Nothing here sends email; outside DEBUG the console backend is a configuration error.
        "EMAIL_URL": f"smtp://127.0.0.1:{free_port()}",
        "PORTAL_URL": url,
        "ENROLLMENT_URL": url,
        "ALLOWED_HOSTS": HOST,
        # An origin carries its port; on 443 this would be https://enterpriseenrollment.test.
        "CSRF_TRUSTED_ORIGINS": url,
        "STATIC_ROOT": str(folder / "staticfiles"),
    })
    # The production environment alone: nothing of this process's (DEBUG, a developer's .env values).
    process_env = isolated({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **env})
    _run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], process_env, "collectstatic")
    site = folder / "mdmportal.conf"
    site.write_text(render_nginx_site(https_port=https_port, http_port=http_port, upstream=f"127.0.0.1:{web_port}",
                                      certificate=certificate, key=key, static_root=folder / "staticfiles",
                                      webroot=folder / "webroot", access_log=folder / "mdmportal.access.log"))
    challenges = folder / "webroot" / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True)
    (challenges / ACME_TOKEN).write_text(f"{ACME_TOKEN}.thumbprint")
    main_config = folder / "nginx.conf"
    main_config.write_text(nginx_main_config(folder, site))
    production = Production(https_port, http_port, ca_file, process_env, ca_passphrase,
                            logs=[folder / "gunicorn.log", folder / "error.log", folder / "mdmportal.access.log"])
    processes = []
    try:
        with (folder / "gunicorn.log").open("w") as log:
            processes.append(subprocess.Popen(gunicorn_command(f"127.0.0.1:{web_port}"), cwd=ROOT, env=process_env,
                                              stdout=log, stderr=subprocess.STDOUT))
            processes.append(subprocess.Popen([nginx, "-e", str(folder / "error.log"), "-p", str(folder),
                                               "-c", str(main_config)], cwd=folder, stdout=log,
                                              stderr=subprocess.STDOUT))
        _wait_until_serving(production, processes)
        yield production
    finally:
        # Quick shutdowns: SIGTERM for nginx; SIGINT for gunicorn (its SIGTERM waits on the workers).
        for process, sig in reversed(list(zip(processes, (signal.SIGINT, signal.SIGTERM)))):
            _stop(process, sig)


def _wait_until_serving(production, processes, timeout=60):
    """The discovery probe through nginx answers 200 once gunicorn is up (502 until then)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            break
        try:
            connection = production.connection(timeout=2)
            connection.request("GET", DISCOVERY)
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return
        except OSError as exc:
            status = exc
        time.sleep(0.3)
    pytest.fail(f"nginx + gunicorn did not serve the discovery probe (last: {status}):\n{production.output()}",
                pytrace=False)


@pytest.fixture
def deployed(production, settings):
    """An organisation whose enrollment URL is the HTTPS address, our CA, and Carol, with the keys and
    password hash the production server can read."""
    from tests.factories import PASSWORD, OrganisationFactory, UserFactory
    from tests.factories_enrollment import CertificateAuthorityFactory

    settings.CA_KEY_PASSPHRASE = production.ca_passphrase
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # as the server's
    OrganisationFactory(enrollment_base_url=production.url)
    CertificateAuthorityFactory(issuing=True)
    UserFactory(email="carol@example.com")
    return PASSWORD


def enroll(production, password, **options):
    try:
        return production.simulator("carol@example.com", password, **options).run()
    except sim.SimulatorError as exc:
        pytest.fail(f"enrollment through nginx failed at {exc}\n{production.output()}", pytrace=False)


# --- the tests ------------------------------------------------------------------------------------

@with_database
def test_pc_enrolls_over_https_and_checks_in_with_its_certificate_in_the_tls_handshake(production, deployed):
    from enrollment.models import Device
    from management.models import ManagementSession

    simulator = production.simulator("carol@example.com", deployed)
    result = simulator.run()
    device = Device.objects.get(device_id=result.device_id)
    assert device.user.email == "carol@example.com"
    assert device.last_seen_at is None
    assert result.provisioning.management_url == f"{production.url}/ManagementServer/MDM.svc"

    assert not simulator.client_cert_header  # https: the certificate goes in the handshake, no header
    session = simulator.checkin(result)

    assert session.auth == "certificate"
    device.refresh_from_db()
    assert device.last_seen_at is not None
    assert device.serial_number == simulator.serial_number  # the inventory read in the session was stored
    server_session = ManagementSession.objects.get(device=device)
    assert server_session.auth == ManagementSession.Auth.CERTIFICATE
    assert server_session.session_id == session.session_id


@with_database
def test_client_certificate_header_sent_by_a_client_is_overwritten_by_nginx(production, deployed):
    from enrollment.models import Device
    from management.models import ManagementSession
    from accounts.models import AuditEvent

    result = enroll(production, deployed)
    # The device's own certificate, in the header gunicorn would believe from nginx's address, but
    # no certificate in the TLS handshake: nginx replaces the header with the (empty) one it saw.
    spoofer = production.simulator("carol@example.com", deployed, device_id=result.device_id,
                                   client_cert_header=True)

    with pytest.raises(sim.SimulatorError) as refused:
        spoofer.checkin(result)

    assert refused.value.check == "checkin-auth", refused.value  # challenged for credentials: not recognised
    device = Device.objects.get(device_id=result.device_id)
    assert device.last_seen_at is None
    assert not ManagementSession.objects.filter(device=device, auth=ManagementSession.Auth.CERTIFICATE).exists()
    challenge = AuditEvent.objects.get(action="management.challenged")
    assert challenge.detail["reason"] == "no client certificate and no credentials"


@with_database
def test_audit_entries_and_lockouts_see_the_clients_address_not_nginxs(production, deployed):
    from axes.models import AccessAttempt

    from accounts.models import AuditEvent, Organisation
    from tests.enrollment_soap import CONTENT_TYPE, get_policies_body

    key = Organisation.get().enrollment_key
    connection = production.connection(source="127.0.0.2")
    connection.request("POST", f"/EnrollmentServer/{key}/Policy.svc",
                       body=get_policies_body("carol@example.com", "not her password"),
                       headers={"Content-Type": CONTENT_TYPE, "X-Forwarded-For": "203.0.113.9"})
    response = connection.getresponse()

    assert b"Authentication" in response.read()
    assert AuditEvent.objects.get(action="enrollment.refused").ip == "127.0.0.2"
    assert AccessAttempt.objects.get().ip_address == "127.0.0.2"  # not nginx's, not the forged one


@with_database
def test_federated_sign_in_page_works_through_nginx(production, deployed):
    from enrollment.models import Device
    from accounts.models import Organisation

    Organisation.objects.update(auth_policy="federated")
    result = enroll(production, deployed, federated=True)

    assert result.discovery.auth_policy == "Federated"
    assert result.discovery.authentication_url.startswith(f"{production.url}/")
    assert Device.objects.filter(device_id=result.device_id, user__email="carol@example.com").exists()


def test_plain_http_is_redirected_to_https(production):
    connection = production.connection(tls=False)
    connection.request("GET", f"{DISCOVERY}?probe=1")
    response = connection.getresponse()

    assert response.status == 301
    # $host: the public name without the test's port (on 80/443 that is the HTTPS address).
    assert response.getheader("Location") == f"https://{HOST}{DISCOVERY}?probe=1"


def test_acme_challenges_are_answered_over_plain_http_for_certificate_renewals(production):
    connection = production.connection(tls=False)
    connection.request("GET", f"/.well-known/acme-challenge/{ACME_TOKEN}")
    response = connection.getresponse()

    assert response.status == 200
    assert response.read() == f"{ACME_TOKEN}.thumbprint".encode()


def test_discovery_probe_through_nginx_is_an_empty_200_with_content_length(production):
    connection = production.connection()
    connection.request("GET", DISCOVERY, headers={"User-Agent": "ENROLLClient"})
    response = connection.getresponse()

    assert response.status == 200
    assert response.getheader("Content-Length") == "0"
    assert response.getheader("Transfer-Encoding") is None
    assert response.read() == b""
    assert response.getheader("Strict-Transport-Security", "").startswith("max-age=")


def test_body_over_two_mebibytes_is_refused_by_nginx_with_413(production):
    connection = production.connection()
    try:
        connection.request("POST", DISCOVERY, body=b"<" * (3 * 1024 * 1024),
                           headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    except (BrokenPipeError, ConnectionResetError):
        pass  # nginx may answer before reading the whole body; its answer is still there to read
    response = connection.getresponse()

    assert response.status == 413


def hardware_hash_csv(target_bytes, prefix="NGINX"):
    """An Autopilot CSV as Get-WindowsAutopilotInfo writes it, of about `target_bytes`, with hashes
    the size of real ones (~4 KB of binary): (bytes, number of rows)."""
    import base64
    import hashlib

    lines, size, row = ["Device Serial Number,Windows Product ID,Hardware Hash"], 0, 0
    while size < target_bytes:
        seed = hashlib.sha512(f"{prefix} {row}".encode()).digest()
        hardware_hash = base64.b64encode((seed * 63)[:4000]).decode()
        lines.append(f"{prefix}{row:07d},00330-80000-00000-AA{row % 1000:03d},{hardware_hash}")
        size += len(lines[-1]) + 2
        row += 1
    return ("\r\n".join(lines) + "\r\n").encode("ascii"), row


def multipart(field, file_name, content):
    boundary = secrets.token_hex(16)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@with_database
def test_twenty_megabyte_hardware_hash_file_is_imported_through_nginx_by_the_api(production, deployed):
    """The upload pages and the import API take files far over the 2 MiB cap of device messages."""
    from autopilot.models import AutopilotDevice, DeviceImport
    from accounts import roles
    from tests.api_helpers import make_token
    from tests.factories import role_admin

    token = make_token(role_admin(roles.ENROLLMENT_ADMIN, "enroller@example.com"))
    content, rows = hardware_hash_csv(20 * 1024 * 1024)
    body, content_type = multipart("file", "AutopilotHWID.csv", content)
    connection = production.connection(timeout=120)
    connection.request("POST", "/api/v1/autopilot/imports/", body=body, headers={
        "Content-Type": content_type, "Authorization": f"Token {token}", "Accept": "application/json"})
    response = connection.getresponse()
    answer = response.read()

    assert response.status == 202, f"{response.status} {answer[:300]!r}\n{production.output()}"
    device_import = DeviceImport.objects.get()
    assert (device_import.file_size, device_import.total_rows) == (len(content), rows)
    # No worker in this set-up: the import ran in-process once the upload was stored.
    assert device_import.status == DeviceImport.Status.DONE, device_import.status
    assert (device_import.created_count, device_import.failed_count) == (rows, 0)
    assert AutopilotDevice.objects.filter(serial_number__startswith="NGINX").count() == rows


def test_large_body_to_a_device_endpoint_is_still_refused_by_nginx_with_413(production):
    for path in ("/ManagementServer/MDM.svc", "/EnrollmentServer/anykey/Enrollment.svc"):
        connection = production.connection()
        try:
            connection.request("POST", path, body=b"<" * (3 * 1024 * 1024),
                               headers={"Content-Type": "application/soap+xml; charset=utf-8"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = connection.getresponse()

        assert response.status == 413, path
        connection.close()


def test_invitation_tokens_never_reach_the_logs(production):
    """An invitation link is a sign-in link: its token must not be readable in nginx's or gunicorn's
    logs, whether it came over HTTPS, over plain HTTP (redirected) or as the Referer of a page it opened."""
    token = secrets.token_urlsafe(32)
    for tls in (True, False):
        connection = production.connection(tls=tls)
        connection.request("GET", f"/invite/{token}?lang=fr")
        connection.getresponse().read()
        connection.close()
    connection = production.connection()
    connection.request("GET", "/static/css/portal.css", headers={"Referer": f"https://{HOST}/invite/{token}"})
    connection.getresponse().read()
    connection.close()

    access_log = next(log for log in production.logs if log.name == "mdmportal.access.log")
    lines = access_log.read_text().splitlines()
    assert sum("/invite/[redacted]?lang=fr" in line for line in lines) == 2
    for log in production.logs:
        assert token not in log.read_text(errors="replace"), f"the invitation token is in {log.name}"


def test_static_files_are_served_by_nginx_from_static_root(production):
    connection = production.connection()
    connection.request("GET", "/static/css/portal.css")
    response = connection.getresponse()

    assert response.status == 200
    assert response.read() == (ROOT / "static" / "css" / "portal.css").read_bytes()
    assert response.getheader("Cache-Control") == "max-age=604800"


def test_production_environment_passes_the_deploy_checks(production):
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=production.env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    # The units name /srv/mdmportal/.venv/bin/…; verify checks that those exist, so point them at ours.
    venv = tmp_path / "srv" / ".venv" / "bin"
    venv.mkdir(parents=True)
    for program in ("gunicorn", "celery"):
        (venv / program).symlink_to(Path(sys.executable).with_name(program))
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        units.append(tmp_path / unit.name)
        units[-1].write_text(unit.read_text().replace("/srv/mdmportal/.venv", str(venv.parent)))
    done = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60)

    assert len(units) == 3
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_every_upload_location_of_the_nginx_site_is_a_url_of_the_portal():
    """The larger body limit applies to the upload pages named in deploy/nginx.conf: a page that moves
    (an app renamed, a path changed) must move there too, or its uploads are refused with 413 again."""
    import re

    from django.urls import Resolver404, resolve

    text = (DEPLOY / "nginx.conf").read_text()
    uploads = re.search(r"location ~ \^/\(([^)]*)\)/\$ \{", text)
    assert uploads, "deploy/nginx.conf has no location for the upload pages"
    paths = [f"/{alternative}/" for alternative in uploads.group(1).split("|")]
    assert len(paths) == 3
    unknown = []
    for path in paths:
        try:
            named = resolve(path).url_name  # None for the admin's catch-all (a redirect or a 404)
        except Resolver404:
            named = None
        if not named:
            unknown.append(path)
    assert unknown == []
