"""Workload: full Windows enrollments per second.

For each mode it enrolls BENCH_ENROLLMENTS simulated PCs (BENCH_PASSWORDLESS_ENROLLMENTS for the
package PIN and the Entra token) over real HTTP with the simulator package
(probe, Discover, the sign-in or terms-of-use page when the mode has one, GetPolicies, RST; every
answer validated down to the certificate chain) from BENCH_CLIENTS concurrent clients:

- on-premise and federated: each PC as its own invited user, with their password;
- provisioning-package PIN: every PC with the one UPN and PIN of a PIN enrollment, as the
  package's Workplace/Enrollments entry sends them (simulator `provisioning_package=True`);
- Entra token: each PC as its own Entra user, with an access token signed by a key the
  bench makes for a tenant of its own. The bench serves that key's JWKS on 127.0.0.1 and configures
  Entra ID enrollment as an administrator would (tenant, audience, mirror URL, `fetch_entra_keys`);
  the server creates each user from its token, as on a tenant's first enrollments.

It reports for each mode enrollments per second next to a floor measured in this run (target: 40 %
of it), and the password hashes per enrollment, counted by the server itself (bench/_hashers.py).
The floor is the cost of the work an enrollment cannot avoid:

- with a password (on-premise, federated): one password hash with the server's hasher plus one
  device-certificate signature with the issuing CA key, spread over the server's workers (never more
  than the machine's cores). Hash target: exactly 1.
- without one (package PIN: its verification is remembered for ENROLLMENT_PASSWORD_CACHE_SECONDS,
  so the warm-up's hash covers the run; Entra token): the same number of requests as the timed run
  made, sent to an empty endpoint (the keyless discovery probe) from the same clients and timed, plus
  the crypto spread over the workers: the certificate signature, and for Entra the token's RS256
  signature check on each of the three requests that carry it. Hash target: at most 1 per package
  and cache period; none with a token.

Client RSA keys (and Entra tokens) are made before the clock starts, so they are not in the figure.
A failed enrollment fails the workload; it is never just a slower figure.
"""
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench._harness import (
    BenchError, ServerCpu, cores, empty_requests_seconds, log, median_seconds, report, server_url, setup_django,
    workers,
)

ENROLLMENTS = int(os.environ.get("BENCH_ENROLLMENTS") or 24)
# The modes without a password take milliseconds each: more of them, so that the timed span is not a
# fraction of a second.
PASSWORDLESS_ENROLLMENTS = int(os.environ.get("BENCH_PASSWORDLESS_ENROLLMENTS") or 200)
TARGET_SHARE = 0.40
PASSWORD = "Bench-enrollment-password-7f3a"
# The requests of an Entra enrollment that carry its token, each checked again by the server: the
# terms-of-use page (Authorization: Bearer), GetPolicies and RST (BinarySecurityToken).
ENTRA_TOKEN_CHECKS = 3


@dataclass(frozen=True)
class Mode:
    label: str
    profile: str  # the bench server (and the organisation's sign-in method) it runs against
    method: str  # Device.method expected
    federated: bool = False
    package: bool = False  # a provisioning package's UPN and PIN instead of each user's password
    entra: bool = False  # an Entra ID access token instead of a password

    @property
    def password(self):
        return not (self.package or self.entra)


MODES = [
    Mode("on-premise", "onpremise", "onpremise"),
    Mode("federated", "federated", "federated", federated=True),
    Mode("provisioning-package PIN", "onpremise", "ppkg", package=True),
    Mode("Entra token", "onpremise", "entra", entra=True),
]


def clients():
    return int(os.environ.get("BENCH_CLIENTS") or 2 * workers())


def parallel():
    """How many enrollments' crypto the server can run at once: its workers, at most the cores."""
    return min(workers(), cores())


def workers_text():
    return f"{parallel()} worker{'' if parallel() == 1 else 's'}"


def new_keys(count):
    from cryptography.hazmat.primitives.asymmetric import rsa

    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(count)]


@dataclass(frozen=True)
class Credentials:
    """What one simulated PC signs in with, and the user its device must be recorded for (None: the
    server makes the user, from an Entra token)."""

    name: str
    secret: str
    user: object
    pin_enrollment: object = None


def seed_package(run_id, count):
    """A PIN enrollment allowed `count` devices, for a device-pool account: `count` credentials."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from enrollment import ppkg

    owner = get_user_model().objects.create_user(f"bench-{run_id}-pool@bench.invalid")
    pin_enrollment, pin = ppkg.create(name=f"bench {run_id}", owner=owner, upn=f"enroll-{run_id}@bench.invalid",
                                      expires_at=timezone.now() + timedelta(days=1), max_devices=count)
    return [Credentials(pin_enrollment.upn, pin, owner, pin_enrollment)] * count


def seed_users(run_id, label, count, password_hash):
    """`count` users, each with a sent invitation, as an invited user is when they enroll. They all
    share one precomputed password hash: seeding costs one hash, not `count`."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from invitations.models import Invitation

    User = get_user_model()
    now = timezone.now()
    users = User.objects.bulk_create([
        User(email=f"bench-{run_id}-{label}-{i}@bench.invalid", password=password_hash) for i in range(count)
    ])
    Invitation.objects.bulk_create([
        Invitation(user=user, status=Invitation.Status.SENT, sent_at=now, expires_at=now + timedelta(days=14))
        for user in users
    ])
    return [Credentials(user.email, PASSWORD, user) for user in users]


# --- Entra ID: the bench's own tenant ---------------------------------------------------------------

class _JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps(self.server.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


class EntraTenant:
    """A stand-in for an organisation's Entra ID tenant: a token-signing key of its own, whose public
    JWKS it serves on 127.0.0.1 as the mirror an administrator points the portal at, and access tokens
    for the MDM application as Entra issues them to Windows (Entra integration with MDM). Use as a context manager:
    `configure()` switches Entra enrollment on as an administrator would; leaving switches it off and
    retires the key set it imported, so the other modes (and a kept database) are left as before."""

    AUDIENCE = "https://enterpriseenrollment.bench.invalid"

    def __init__(self, run_id):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.run_id = run_id
        self.tenant_id = str(uuid.uuid4())
        self.kid = f"bench-{run_id}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "n": public["n"], "e": public["e"]}]}
        self.server = None
        self.jwks_set = None

    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
        self.server.jwks = self.jwks
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        from enrollment.models import EntraSettings

        self.server.shutdown()
        self.server.server_close()
        EntraSettings.objects.filter(pk=1).update(enabled=False)
        if self.jwks_set is not None and self.jwks_set.active:
            self.jwks_set.deactivate()

    @property
    def mirror_url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{self.tenant_id}/discovery/v2.0/keys"

    def configure(self):
        """What an administrator does on the console's Entra ID settings page (tenant id, the MDM
        application's App ID URI, the JWKS mirror URL, Entra enrollment on), then the keys fetched from
        the mirror with `manage.py fetch_entra_keys`, as its cron job does."""
        from io import StringIO

        from django.core.management import call_command
        from django.test import override_settings

        from enrollment.models import EntraSettings, JwksSet

        config = EntraSettings.get()
        config.enabled, config.tenant_ids, config.audiences = True, [self.tenant_id], [self.AUDIENCE]
        config.jwks_mirror_url = self.mirror_url
        config.save()
        # This stand-in serves its keys over plain http on 127.0.0.1, which the portal accepts only
        # with ENTRA_ALLOW_LOOPBACK_HTTP (a real mirror is https).
        with override_settings(ENTRA_ALLOW_LOOPBACK_HTTP=True):
            call_command("fetch_entra_keys", stdout=StringIO())
        self.jwks_set = next((jwks for jwks in JwksSet.objects.active() if self.kid in jwks.key_ids), None)
        if self.jwks_set is None or not EntraSettings.get().is_ready:
            raise BenchError(f"Entra ID enrollment is not ready after importing the keys from {self.mirror_url}")

    def token(self, upn):
        """An Entra access token for the MDM application (v1, as Windows gets it after an Entra join or
        when a work account is added), valid for an hour, for a new user of the tenant."""
        import jwt

        now = int(time.time())
        claims = {
            "aud": self.AUDIENCE, "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now - 60,
            "nbf": now - 60, "exp": now + 3600, "tid": self.tenant_id, "oid": str(uuid.uuid4()), "upn": upn,
            "unique_name": upn, "name": upn.split("@")[0], "scp": "mdm_delegation", "deviceid": str(uuid.uuid4()),
            "ver": "1.0",
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def credentials(self, label, count):
        names = [f"bench-{self.run_id}-{label}-{i}@bench.invalid" for i in range(count)]
        return [Credentials(name, self.token(name), None) for name in names]

    def check_seconds(self):
        """One token signature check as the server does it (PyJWT, RS256, the tenant's public key)."""
        import jwt

        token, public_key = self.token("floor@bench.invalid"), self.key.public_key()
        return median_seconds(lambda: jwt.decode(token, public_key, algorithms=["RS256"], audience=self.AUDIENCE),
                              repeat=20)


# --- running enrollments ----------------------------------------------------------------------------

def new_simulator(url, who, key, mode):
    """The Simulator of one PC of `mode` signing in with `who`, its key made beforehand."""
    from simulator import Simulator

    if mode.entra:
        # An Entra client discovers with the token's UPN and shows the terms of use (as Windows does).
        terms_url = url.rstrip("/") + "/EnrollmentServer/TermsOfUse"
        return Simulator(url, None, entra_token=who.secret, terms_url=terms_url, private_key=key, timeout=120)
    return Simulator(url, who.name, who.secret, federated=mode.federated, private_key=key, timeout=120,
                     provisioning_package=mode.package)


def enroll_all(url, credentials, keys, mode):
    """Run one Simulator per credentials from `clients()` threads; returns (wall seconds,
    [(credentials, result)], failures)."""

    def one(pair):
        who, key = pair
        simulator = new_simulator(url, who, key, mode)
        try:
            return (who, simulator.run()), None
        except Exception as error:  # noqa: BLE001 - every failure is reported with its user
            return None, f"{who.name}: {type(error).__name__}: {error}"

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients()) as pool:
        outcomes = list(pool.map(one, zip(credentials, keys)))
    elapsed = time.perf_counter() - started
    return elapsed, [r for r, _ in outcomes if r], [e for _, e in outcomes if e]


def check_recorded(enrolled, method):
    """Every enrollment a client saw is a Device row of its user (and PIN enrollment), with the method
    and certificate. A user made by the server from an Entra token is the one with the token's UPN."""
    from django.contrib.auth import get_user_model

    from enrollment.models import Device
    from simulator import thumbprint

    devices = {d.device_id: d for d in Device.objects.filter(device_id__in=[r.device_id for _, r in enrolled])}
    made = dict(get_user_model().objects.filter(email__in=[who.name for who, _ in enrolled if who.user is None])
                .values_list("email", "pk"))
    problems = []
    for who, result in enrolled:
        device = devices.get(result.device_id)
        user_id = who.user.pk if who.user is not None else made.get(who.name)
        expected = (user_id, method, thumbprint(result.certificate), getattr(who.pin_enrollment, "pk", None))
        if device is None:
            problems.append(f"{who.name}: device {result.device_id} was not recorded")
        elif user_id is None or (device.user_id, device.method, device.certificate_thumbprint,
                                 device.pin_enrollment_id) != expected:
            problems.append(f"{who.name}: device {result.device_id} recorded for user {device.user_id} "
                            f"as {device.method} with certificate {device.certificate_thumbprint}")
    return problems


def step_summary(enrolled):
    steps = defaultdict(list)
    for _, result in enrolled:
        for step in result.steps:
            steps[step.name].append(step.seconds)
    return ", ".join(f"{name} {statistics.mean(times) * 1000:.0f} ms" for name, times in steps.items())


# Request kinds of an enrollment, as the server logs them (bench/_queries.py): (method, path suffix).
REQUEST_KINDS = [
    ("probe", "GET", "/discovery.svc"), ("discover", "POST", "/discovery.svc"),
    ("sign-in page", "GET", "/signin"), ("sign-in", "POST", "/signin"),
    ("terms page", "GET", "/termsofuse"), ("terms answer", "POST", "/termsofuse"),
    ("policies", "POST", "/policy.svc"), ("enroll", "POST", "/enrollment.svc"),
]


def server_profile(requests):
    """Median server milliseconds and SQL queries per kind of request, from the server's own log."""
    kinds = defaultdict(list)
    for request in requests:
        name = next((name for name, method, suffix in REQUEST_KINDS
                     if request.method == method and request.path.lower().endswith(suffix)), request.path)
        kinds[name].append(request)
    return ", ".join(
        f"{name} {statistics.median(r.milliseconds for r in found):.0f} ms/{max(r.queries for r in found)} SQL"
        f" (×{len(found)})" for name, found in kinds.items())


def set_auth_policy(policy):
    """The organisation's sign-in method (a console setting, read by every request): the modes run one
    after the other against the shared database."""
    from accounts.models import Organisation

    Organisation.objects.filter(pk=Organisation.get().pk).update(auth_policy=policy)


def switch_entra_off():
    """While Entra enrollment is on, discovery answers Federated to every device that offers it; the
    on-premise mode needs it off (a run stopped during the Entra mode may have left it on)."""
    from enrollment.models import EntraSettings

    EntraSettings.objects.filter(pk=1).update(enabled=False)


# --- floors -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Floor:
    rate: float  # enrollments per second
    text: str  # what it consists of, for the table


def signature_seconds():
    """One device certificate signed with the issuing CA key, as the RST does."""
    from pki import ca

    (public_key,) = [key.public_key() for key in new_keys(1)]
    ca.issue_device_certificate(public_key, "BENCHFLOOR")  # loads and decrypts the CA key once, as a worker does
    return median_seconds(lambda: ca.issue_device_certificate(public_key, "BENCHFLOOR"), repeat=5)


def password_floor():
    """One password hash (check_password with the server's hasher) plus one certificate signature per
    enrollment, on every worker at once."""
    from django.contrib.auth.hashers import check_password, get_hasher, make_password

    encoded = make_password(PASSWORD)
    hash_seconds = median_seconds(lambda: check_password(PASSWORD, encoded), repeat=3)
    sign_seconds = signature_seconds()
    hasher = get_hasher()
    log(f"floor: {hasher.algorithm} x{getattr(hasher, 'iterations', '?')} check_password {hash_seconds * 1000:.0f} ms, "
        f"issue_device_certificate {sign_seconds * 1000:.1f} ms")
    rate = parallel() / (hash_seconds + sign_seconds)
    return Floor(rate, f"{rate:.2f}/s: {workers_text()} ÷ (1 password hash {hash_seconds * 1000:.0f} ms "
                       f"+ 1 signature {sign_seconds * 1000:.1f} ms)")


def request_floor(url, count, requests, crypto):
    """For enrollments that hash no password: `requests` empty requests (as many as the timed run
    made for its `count` enrollments) from the same clients, timed now, plus `crypto` [(what, seconds
    per enrollment)] on every worker at once."""
    empty = empty_requests_seconds(url, requests, clients())
    crypto_seconds = sum(seconds for _, seconds in crypto)
    rate = count / (empty + count * crypto_seconds / parallel())
    per_enrollment = requests / count
    log(f"floor: {requests} empty requests in {empty:.2f} s ({requests / empty:.0f}/s from {clients()} clients); "
        + ", ".join(f"{what} {seconds * 1000:.2f} ms" for what, seconds in crypto))
    crypto_text = " + ".join(f"{what} {seconds * 1000:.1f} ms" for what, seconds in crypto)
    return Floor(rate, f"{rate:.1f}/s: {per_enrollment:.0f} empty requests at {requests / empty:.0f}/s "
                       f"+ ({crypto_text}) ÷ {workers_text()}")


# --- one mode -----------------------------------------------------------------------------------------

def credentials_for(mode, run_id, count, password_hash, tenant):
    if mode.package:
        return seed_package(run_id, count)
    if mode.entra:
        return tenant.credentials("entra", count)
    return seed_users(run_id, mode.profile, count, password_hash)


def run_mode(mode, run_id, password_hash, tenant=None):
    from bench._hashers import hashes_counted
    from bench._queries import log_size, requests_since

    label, profile = mode.label, mode.profile
    url = server_url(profile)
    hash_log = os.environ.get(f"BENCH_HASH_LOG_{profile.upper()}", "")
    query_log = os.environ.get(f"BENCH_QUERY_LOG_{profile.upper()}", "")
    if not hash_log or not query_log:
        raise BenchError(f"BENCH_HASH_LOG_{profile.upper()} or BENCH_QUERY_LOG_{profile.upper()} is not set: "
                         "run this through bench/run")
    set_auth_policy(profile)
    count = ENROLLMENTS if mode.password else PASSWORDLESS_ENROLLMENTS
    warm = clients()
    credentials = credentials_for(mode, run_id, count + warm, password_hash, tenant)
    keys = new_keys(count + warm)
    # Untimed warm-up: the workers' first requests import modules and open connections.
    _, _, failures = enroll_all(url, credentials[:warm], keys[:warm], mode)
    if failures:
        return failures
    floor = password_floor() if mode.password else None

    before, offset = hashes_counted(hash_log), log_size(query_log)
    meter = ServerCpu()
    elapsed, enrolled, failures = enroll_all(url, credentials[warm:], keys[warm:], mode)
    cpu = meter.stop()
    hashes = hashes_counted(hash_log) - before
    requests = requests_since(query_log, offset, "/EnrollmentServer/")
    failures += check_recorded(enrolled, mode.method)
    if failures:
        return failures
    if floor is None:
        crypto = [("1 signature", signature_seconds())]
        if mode.entra:
            crypto.append((f"{ENTRA_TOKEN_CHECKS} token checks in all", ENTRA_TOKEN_CHECKS * tenant.check_seconds()))
        floor = request_floor(url, count, len(requests), crypto)

    rate = count / elapsed
    share = rate / floor.rate
    log(f"{label}: {count} enrollments in {elapsed:.2f} s from {clients()} clients; "
        f"mean client-side step times: {step_summary(enrolled)}")
    log(f"{label}: median server time per request (bench/_queries.py): {server_profile(requests)}")
    report(
        f"enrollments/s, {label} ({count} PCs, {clients()} clients)",
        f"{rate:.2f}/s",
        f"≥ {TARGET_SHARE * floor.rate:.2f}/s (40% of floor)",
        floor.text,
        f"met ({share:.0%} of floor)" if share >= TARGET_SHARE else f"gap: {share:.0%} of floor",
    )
    # What these cores could do at this CPU per enrollment, the load generator's (on the same cores)
    # included: a ceiling no server-side change can lift above cores ÷ the load generator's share.
    spent_ms = cpu.server * 1000 / count + cpu.per(count)["client"]
    ceiling = (os.cpu_count() or 1) * 1000 / spent_ms
    client_ceiling = (os.cpu_count() or 1) * 1000 / max(cpu.per(count)["client"], 0.001)
    report(f"CPU per enrollment, {label}", cpu.text(count, "enrollment"), "", "",
           f"{os.cpu_count()} cores ÷ this CPU: {ceiling:.1f}/s ({ceiling / floor.rate:.0%} of floor); "
           f"÷ the load generator's alone: {client_ceiling:.1f}/s ({client_ceiling / floor.rate:.0%})")
    per_enrollment = hashes / count
    if mode.package:
        # One PIN for the whole fleet: its verification is remembered for ENROLLMENT_PASSWORD_CACHE_SECONDS
        # (enrollment/ppkg.py), so the warm-up's hash covers the timed run.
        target, met, gap = "≤ 1 per package and cache period", hashes <= 1, f"{hashes} hashes"
    elif mode.entra:
        target, met, gap = "0 (the token is the proof)", hashes == 0, f"{hashes} hashes"
    else:
        target, met, gap = "exactly 1", hashes == count, f"{hashes - count:+d} hashes"
    report(
        f"password hashes per enrollment, {label}",
        f"{per_enrollment:.2f} ({hashes} for {count})",
        target,
        "",
        "met" if met else f"gap: {gap}",
    )
    return []


def main():
    setup_django()
    from django.contrib.auth.hashers import make_password

    run_id = os.urandom(4).hex()
    password_hash = make_password(PASSWORD)
    switch_entra_off()
    failed = False
    for mode in MODES:
        if mode.entra:
            with EntraTenant(run_id) as tenant:
                tenant.configure()
                failures = run_mode(mode, run_id, password_hash, tenant)
        else:
            failures = run_mode(mode, run_id, password_hash)
        if failures:
            failed = True
            log(f"{mode.label}: {len(failures)} enrollment(s) failed:")
            for failure in failures[:10]:
                log(f"  {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        log(f"bench: {error}")
        sys.exit(2)
