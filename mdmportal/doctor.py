"""`manage.py doctor`: the deployment checked from the outside, as an operator would, with the fix for
each problem. Reads only: it resolves names, opens connections and asks questions, and writes nothing.

Each check yields Results; `Doctor.run()` gives them all, in the order an operator would fix them.
Network access goes through `resolve` and `connect`, so that tests point it at local servers.
"""
import smtplib
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError
from django.http.request import split_domain_port, validate_host

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# Windows looks for this name under the domain of the address the user types (MS-MDE2 3.1).
AUTODISCOVERY_PREFIX = "enterpriseenrollment."
CERT_WARN_DAYS = 21  # a TLS certificate closer than this to its end is renewed now
CA_WARN_DAYS = 180  # re-keying a CA takes planning: devices must get the new root
CLOCK_WARN_SECONDS = 5
CLOCK_FAIL_SECONDS = 60  # issued certificates start "now": a clock this far off makes them not yet valid
STALE_QUEUE_MINUTES = 10
MAX_DOMAINS = 20
BEAT_TASKS = ["invitations.tasks.sweep_queued_emails", "management.tasks.expire_commands",
              "management.tasks.finish_retirements", "enrollment.tasks.purge_spent_entra_tokens"]


@dataclass
class Result:
    status: str
    check: str
    message: str
    fix: str = ""

    def line(self):
        text = f"{self.status:<4} {self.check}: {self.message}"
        return f"{text} — fix: {self.fix}" if self.fix else text


def resolve_host(host):
    """The addresses `host` resolves to, by the system resolver; OSError when it does not resolve."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


class Doctor:
    def __init__(self, *, domains=None, resolve=None, pinned=None, tls_context=None, timeout=5.0,
                 now=time.time, https_port=443):
        self.domains = domains
        self.pinned = dict(pinned or {})  # host -> address, as curl --resolve
        self._resolve = resolve
        self.tls_context = tls_context or ssl.create_default_context()
        self.timeout = timeout
        self.now = now
        self.https_port = https_port  # where Windows looks for enterpriseenrollment.<domain>

    def run(self):
        try:
            yield from self.check_database()
        except DatabaseError as exc:
            yield Result(FAIL, "database", f"cannot use the database: {type(exc).__name__}: {str(exc).strip()[:200]}",
                         "start PostgreSQL and check DATABASE_URL; the checks that read it were skipped")
            checks = (self.check_smtp, self.check_broker)
        else:
            checks = (self.check_migrations, self.check_hosts, self.check_dns, self.check_tls, self.check_clock,
                      self.check_ca, self.check_smtp, self.check_broker, self.check_beat)
        for check in checks:
            try:
                yield from check()
            except DatabaseError as exc:
                yield Result(FAIL, check.__name__.removeprefix("check_"), f"could not check: the database "
                             f"answered {type(exc).__name__}: {str(exc).strip()[:200]}", "run `manage.py migrate`")

    # -- helpers -----------------------------------------------------------------------------------

    def resolve(self, host):
        if host in self.pinned:
            return [self.pinned[host]]
        return (self._resolve or resolve_host)(host)

    def enrollment_base_url(self):
        from accounts.models import Organisation

        # Not Organisation.get(): it creates the row when missing, and the doctor writes nothing.
        organisation = Organisation.objects.filter(pk=1).first()
        return organisation.base_url if organisation else settings.ENROLLMENT_URL.rstrip("/")

    def public_urls(self):
        urls = {"PORTAL_URL": settings.PORTAL_URL, "ENROLLMENT_URL": settings.ENROLLMENT_URL}
        base = self.enrollment_base_url()
        if base != settings.ENROLLMENT_URL:
            urls["the organisation's enrollment server address"] = base
        return urls

    def email_domains(self):
        if self.domains is not None:
            return list(self.domains)
        from accounts.models import User

        counts = Counter(email.rsplit("@", 1)[-1].lower()
                         for email in User.objects.filter(is_active=True).values_list("email", flat=True)
                         if "@" in email)
        return [domain for domain, _ in counts.most_common(MAX_DOMAINS)]

    # -- checks ------------------------------------------------------------------------------------

    def check_hosts(self):
        for name, url in self.public_urls().items():
            parts = urlsplit(url)
            if parts.scheme != "https":
                yield Result(FAIL, "hosts", f"{name} {url} is not https",
                             "serve it through nginx with TLS and set it to https://<host>")
                continue
            host, _port = split_domain_port(parts.netloc)
            if not validate_host(host, settings.ALLOWED_HOSTS):
                yield Result(FAIL, "hosts", f"{name} host {host} is not in ALLOWED_HOSTS",
                             f"add {host} to ALLOWED_HOSTS")
                continue
            yield Result(OK, "hosts", f"{name} {url} is https and allowed")

    def check_database(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        yield Result(OK, "database", f"{connection.vendor} database {connection.settings_dict['NAME']} answers")

    def check_migrations(self):
        from django.db import DEFAULT_DB_ALIAS, connections
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            names = ", ".join(f"{m.app_label}.{m.name}" for m, _backwards in plan[:5])
            yield Result(FAIL, "migrations", f"{len(plan)} migration(s) not applied ({names})",
                         "run `manage.py migrate`")
            return
        yield Result(OK, "migrations", "the database schema is up to date")

    def check_dns(self):
        enrollment_host = urlsplit(self.enrollment_base_url()).hostname or ""
        try:
            expected = set(self.resolve(enrollment_host))
        except OSError as exc:
            yield Result(FAIL, "dns", f"the enrollment host {enrollment_host} does not resolve ({exc})",
                         f"create an A/AAAA record for {enrollment_host}")
            return
        yield Result(OK, "dns", f"{enrollment_host} resolves to {', '.join(sorted(expected))}")
        domains = self.email_domains()
        if not domains:
            yield Result(WARN, "dns", "no user email domains to check autodiscovery for",
                         "add users, or name the domains with --domain")
        for domain in domains:
            name = AUTODISCOVERY_PREFIX + domain
            try:
                addresses = set(self.resolve(name))
            except OSError:
                yield Result(FAIL, "dns", f"{name} does not resolve: Windows cannot find the server from "
                             f"an @{domain} address", f"create a CNAME {name} -> {enrollment_host}")
                continue
            if name != enrollment_host and not addresses & expected:
                yield Result(WARN, "dns", f"{name} resolves to {', '.join(sorted(addresses))}, not to the "
                             f"enrollment host {enrollment_host}", f"point {name} at {enrollment_host} (CNAME)")
                continue
            yield Result(OK, "dns", f"{name} resolves to the enrollment server")

    def tls_hosts(self):
        parts = urlsplit(self.enrollment_base_url())
        hosts = [(parts.hostname, parts.port or 443)]
        for domain in self.email_domains():
            name = AUTODISCOVERY_PREFIX + domain
            if name != parts.hostname:
                hosts.append((name, self.https_port))
        return hosts

    def check_tls(self):
        for host, port in self.tls_hosts():
            try:
                address = self.resolve(host)[0]
            except (OSError, IndexError):
                continue  # reported by the DNS check
            yield self._check_certificate(host, address, port)

    def _check_certificate(self, host, address, port):
        where = f"{host}:{port}"
        try:
            with socket.create_connection((address, port), timeout=self.timeout) as sock:
                with self.tls_context.wrap_socket(sock, server_hostname=host) as tls:
                    certificate = tls.getpeercert()
        except ssl.SSLCertVerificationError as exc:
            return Result(FAIL, "tls", f"{where} certificate is not trusted: {exc.verify_message}",
                          f"install a certificate for {host} with its full chain from a public CA "
                          "(Windows must trust it before it knows our root)")
        except (OSError, ssl.SSLError) as exc:
            return Result(FAIL, "tls", f"cannot open TLS to {where} ({address}): {exc}",
                          "check that nginx listens on 443 with TLS for this name")
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(certificate["notAfter"]), timezone.utc)
        left = expires - datetime.fromtimestamp(self.now(), timezone.utc)
        if left < timedelta(days=CERT_WARN_DAYS):
            return Result(WARN, "tls", f"{where} certificate expires {expires:%Y-%m-%d} ({left.days} days)",
                          "renew it now (certbot renew, or your CA)")
        return Result(OK, "tls", f"{where} certificate is trusted, names {host}, valid until {expires:%Y-%m-%d}")

    def check_clock(self):
        from django.db import connection

        if connection.vendor != "postgresql":
            yield Result(OK, "clock", f"the {connection.vendor} database shares this machine's clock")
            return
        with connection.cursor() as cursor:
            before = self.now()
            cursor.execute("SELECT extract(epoch FROM clock_timestamp())")
            database = float(cursor.fetchone()[0])
            after = self.now()
        skew = database - (before + after) / 2
        message = f"this machine is {abs(skew):.1f} s {'behind' if skew > 0 else 'ahead of'} the database server"
        if abs(skew) >= CLOCK_FAIL_SECONDS:
            yield Result(FAIL, "clock", message, "run NTP (systemd-timesyncd or chrony) on every server")
        elif abs(skew) >= CLOCK_WARN_SECONDS:
            yield Result(WARN, "clock", message, "run NTP (systemd-timesyncd or chrony) on every server")
        else:
            yield Result(OK, "clock", message)

    def check_ca(self):
        from pki import ca
        from pki.checks import MIN_PASSPHRASE_LENGTH

        if not settings.CA_KEY_PASSPHRASE:
            yield Result(FAIL, "ca", "CA_KEY_PASSPHRASE is not set: CA keys are encrypted with a passphrase "
                         "derived from SECRET_KEY", "set CA_KEY_PASSPHRASE (openssl rand -base64 32) before "
                         "`manage.py init_ca`; with keys already stored, set it and run "
                         "`manage.py rotate_ca_passphrase --old-from-development-key`")
        elif len(settings.CA_KEY_PASSPHRASE) < MIN_PASSPHRASE_LENGTH:
            yield Result(WARN, "ca", f"CA_KEY_PASSPHRASE is shorter than {MIN_PASSPHRASE_LENGTH} characters",
                         "use a long random value (openssl rand -base64 32)")
        else:
            yield Result(OK, "ca", "CA_KEY_PASSPHRASE is set")
        try:
            root, issuing = ca.active_authorities()
        except ca.CaNotInitialised:
            yield Result(FAIL, "ca", "no certificate authority", "run `manage.py init_ca` or `manage.py import_ca`")
            return
        try:
            key = ca.private_key_of(issuing)
        except ca.CaKeyError:
            yield Result(FAIL, "ca", "the issuing CA key cannot be decrypted with CA_KEY_PASSPHRASE",
                         "after changing the passphrase, run `manage.py rotate_ca_passphrase` with the old one in "
                         "OLD_CA_KEY_PASSPHRASE; else restore the passphrase used when the CA was created, "
                         "or `import_ca --replace`")
            return
        certificate = ca.certificate_of(issuing)
        if key.public_key().public_numbers() != certificate.public_key().public_numbers():
            yield Result(FAIL, "ca", "the issuing CA key does not match its certificate", "`import_ca --replace`")
            return
        now = datetime.fromtimestamp(self.now(), timezone.utc)
        for authority in (root, issuing):
            cert = ca.certificate_of(authority)
            left = cert.not_valid_after_utc - now
            name = authority.get_kind_display()
            if left <= timedelta(0):
                yield Result(FAIL, "ca", f"the {name} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                             "import a new CA (`import_ca --replace`); enrolled devices must enroll again")
            elif left < timedelta(days=CA_WARN_DAYS) or left.days < settings.DEVICE_CERT_VALIDITY_DAYS:
                yield Result(WARN, "ca", f"the {name} expires on {cert.not_valid_after_utc:%Y-%m-%d} "
                             f"({left.days} days), before device certificates issued today would",
                             "plan a new CA and import it with `import_ca --replace`")
            else:
                yield Result(OK, "ca", f"the {name} is valid until {cert.not_valid_after_utc:%Y-%m-%d}")

    def check_smtp(self):
        from mdmportal.checks import email_misconfiguration

        if problem := email_misconfiguration():
            yield Result(FAIL, "smtp", f"{problem}: invitation links and PINs would not reach the users "
                         "(or would reach the journal)", "set EMAIL_URL=smtp+tls://user:password@host:587")
            return
        if settings.EMAIL_BACKEND != "django.core.mail.backends.smtp.EmailBackend":
            yield Result(WARN, "smtp", f"emails are not sent by SMTP ({settings.EMAIL_BACKEND})",
                         "set EMAIL_URL=smtp+tls://user:password@host:587")
            return
        where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        try:
            klass = smtplib.SMTP_SSL if settings.EMAIL_USE_SSL else smtplib.SMTP
            kwargs = {"context": self.tls_context} if settings.EMAIL_USE_SSL else {}
            with klass(settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=self.timeout, **kwargs) as smtp:
                smtp.ehlo()
                if settings.EMAIL_USE_TLS:
                    smtp.starttls(context=self.tls_context)
                    smtp.ehlo()
                if settings.EMAIL_HOST_USER:
                    smtp.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
        except smtplib.SMTPAuthenticationError as exc:
            yield Result(FAIL, "smtp", f"{where} refused the credentials: {exc.smtp_code} {exc.smtp_error!r}",
                         "fix the user and password in EMAIL_URL")
            return
        except (OSError, smtplib.SMTPException) as exc:
            yield Result(FAIL, "smtp", f"cannot talk to {where}: {exc}",
                         "check EMAIL_URL (host, port, smtp+tls:// for STARTTLS) and the firewall")
            return
        tls = " with STARTTLS" if settings.EMAIL_USE_TLS else " over TLS" if settings.EMAIL_USE_SSL else ""
        yield Result(OK, "smtp", f"{where} answers{tls}")

    def check_broker(self):
        from mdmportal.celery import app

        if not settings.REDIS_URL:
            yield Result(WARN, "broker", "REDIS_URL is not set: tasks run inside web requests",
                         "set REDIS_URL and run `celery -A mdmportal worker` and `celery -A mdmportal beat`")
            return
        try:
            with app.connection_for_write(settings.REDIS_URL, connect_timeout=self.timeout) as connection:
                connection.ensure_connection(max_retries=1, timeout=self.timeout)
                replies = app.control.ping(timeout=min(self.timeout, 2.0), connection=connection)
        except Exception as exc:  # kombu wraps each transport's errors differently
            yield Result(FAIL, "broker", f"cannot reach the broker at {_safe_url(settings.REDIS_URL)}: {exc}",
                         "start Redis, or fix REDIS_URL")
            return
        yield Result(OK, "broker", f"the broker at {_safe_url(settings.REDIS_URL)} answers")
        if not replies:
            yield Result(FAIL, "broker", "no Celery worker answers a ping",
                         "start `celery -A mdmportal worker` (systemd: mdmportal-worker)")
            return
        yield Result(OK, "broker", f"{len(replies)} worker(s) answer: {', '.join(sorted(n for r in replies for n in r))}")

    def check_beat(self):
        from mdmportal.celery import app
        from invitations.models import InvitationEmail

        app.loader.import_default_modules()  # registers the tasks of every app
        scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
        missing = [task for task in BEAT_TASKS if task not in scheduled or task not in app.tasks]
        if missing:
            yield Result(FAIL, "beat", f"not scheduled: {', '.join(missing)}", "restore CELERY_BEAT_SCHEDULE")
            return
        yield Result(OK, "beat", f"{len(scheduled)} periodic tasks scheduled")
        cutoff = datetime.fromtimestamp(self.now(), timezone.utc) - timedelta(
            seconds=settings.INVITATION_SWEEP_AFTER_SECONDS, minutes=STALE_QUEUE_MINUTES)
        stale = InvitationEmail.objects.filter(status=InvitationEmail.Status.QUEUED, queued_at__lt=cutoff).count()
        if settings.REDIS_URL and stale:
            yield Result(WARN, "beat", f"{stale} invitation email(s) queued for over {STALE_QUEUE_MINUTES} minutes "
                         "past the sweep", "check that `celery -A mdmportal beat` and a worker are running")


def _safe_url(url):
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
