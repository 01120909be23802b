"""Workload: full Windows enrollments per second (issue 3, Benchmark).

For each auth policy (on-premise, federated) it enrolls BENCH_ENROLLMENTS simulated PCs, each as its
own invited user, over real HTTP with enrollment/simulator.py (probe, Discover, the sign-in page
when federated, GetPolicies, RST; every answer validated down to the certificate chain) from
BENCH_CLIENTS concurrent clients, and reports:

- enrollments per second, next to the floor measured in this run: one password hash with the
  server's hasher plus one device-certificate signature with the issuing CA key per enrollment,
  spread over the server's workers (but never more than the machine's cores). Target: 40% of it.
- password hashes per enrollment, counted by the server itself (bench/_hashers.py). Target: 1.

Client RSA keys are generated before the clock starts, so key generation is not in the figure. A
failed enrollment fails the workload; it is never just a slower figure.
"""
import os
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from bench._harness import BenchError, cores, log, median_seconds, report, server_url, setup_django, workers

ENROLLMENTS = int(os.environ.get("BENCH_ENROLLMENTS") or 24)
TARGET_SHARE = 0.40
PASSWORD = "Bench-enrollment-password-7f3a"
# (row label, server profile, simulator federated flag, Device.method expected)
MODES = [("on-premise", "onpremise", False, "onpremise"), ("federated", "federated", True, "federated")]


def clients():
    return int(os.environ.get("BENCH_CLIENTS") or 2 * workers())


def new_keys(count):
    from cryptography.hazmat.primitives.asymmetric import rsa

    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(count)]


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
    return users


def measure_floor():
    """Seconds of server CPU an enrollment cannot avoid: one password hash + one certificate signature."""
    from django.contrib.auth.hashers import check_password, get_hasher, make_password

    from enrollment import ca

    encoded = make_password(PASSWORD)
    hash_seconds = median_seconds(lambda: check_password(PASSWORD, encoded), repeat=3)
    (public_key,) = [key.public_key() for key in new_keys(1)]
    ca.issue_device_certificate(public_key, "BENCHFLOOR")  # loads and decrypts the CA key once, as a worker does
    sign_seconds = median_seconds(lambda: ca.issue_device_certificate(public_key, "BENCHFLOOR"), repeat=5)
    hasher = get_hasher()
    log(f"floor: {hasher.algorithm} x{getattr(hasher, 'iterations', '?')} check_password {hash_seconds * 1000:.0f} ms, "
        f"issue_device_certificate {sign_seconds * 1000:.1f} ms")
    return hash_seconds + sign_seconds


def enroll_all(url, users, keys, federated):
    """Run one Simulator per user from `clients()` threads; returns (wall seconds, [(user, result)], failures)."""
    from enrollment.simulator import Simulator

    def one(pair):
        user, key = pair
        simulator = Simulator(url, user.email, PASSWORD, federated=federated, private_key=key, timeout=120)
        try:
            return (user, simulator.run()), None
        except Exception as error:  # noqa: BLE001 - every failure is reported with its user
            return None, f"{user.email}: {type(error).__name__}: {error}"

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients()) as pool:
        outcomes = list(pool.map(one, zip(users, keys)))
    elapsed = time.perf_counter() - started
    return elapsed, [r for r, _ in outcomes if r], [e for _, e in outcomes if e]


def check_recorded(enrolled, method):
    """Every enrollment a client saw is a Device row of its user, with the method and certificate."""
    from enrollment.models import Device
    from enrollment.simulator import thumbprint

    devices = {d.device_id: d for d in Device.objects.filter(user__in=[user for user, _ in enrolled])}
    problems = []
    for user, result in enrolled:
        device = devices.get(result.device_id)
        if device is None:
            problems.append(f"{user.email}: device {result.device_id} was not recorded")
        elif (device.user_id, device.method, device.certificate_thumbprint) != (user.pk, method, thumbprint(result.certificate)):
            problems.append(f"{user.email}: device {result.device_id} recorded for user {device.user_id} "
                            f"as {device.method} with certificate {device.certificate_thumbprint}")
    return problems


def step_summary(enrolled):
    steps = defaultdict(list)
    for _, result in enrolled:
        for step in result.steps:
            steps[step.name].append(step.seconds)
    return ", ".join(f"{name} {statistics.mean(times) * 1000:.0f} ms" for name, times in steps.items())


def set_auth_policy(policy):
    """The organisation's sign-in method (a console setting, read by every request): the modes run one
    after the other against the shared database."""
    from invitations.models import Organisation

    Organisation.objects.filter(pk=Organisation.get().pk).update(auth_policy=policy)


def run_mode(label, profile, federated, method, run_id, password_hash):
    from bench._hashers import hashes_counted

    url = server_url(profile)
    hash_log = os.environ.get(f"BENCH_HASH_LOG_{profile.upper()}", "")
    if not hash_log:
        raise BenchError(f"BENCH_HASH_LOG_{profile.upper()} is not set: run this through bench/run")
    set_auth_policy(profile)
    warm = clients()
    users = seed_users(run_id, profile, ENROLLMENTS + warm, password_hash)
    keys = new_keys(ENROLLMENTS + warm)
    # Untimed warm-up: the workers' first requests import modules and open connections.
    _, _, failures = enroll_all(url, users[:warm], keys[:warm], federated)
    if failures:
        return failures
    floor_seconds = measure_floor()

    before = hashes_counted(hash_log)
    elapsed, enrolled, failures = enroll_all(url, users[warm:], keys[warm:], federated)
    hashes = hashes_counted(hash_log) - before
    failures += check_recorded(enrolled, method)
    if failures:
        return failures

    rate = ENROLLMENTS / elapsed
    parallel = min(workers(), cores())
    floor = parallel / floor_seconds
    share = rate / floor
    log(f"{label}: {ENROLLMENTS} enrollments in {elapsed:.2f} s from {clients()} clients; "
        f"mean client-side step times: {step_summary(enrolled)}")
    report(
        f"enrollments/s, {label} ({ENROLLMENTS} PCs, {clients()} clients)",
        f"{rate:.2f}/s",
        f"≥ {TARGET_SHARE * floor:.2f}/s (40% of floor)",
        f"{floor:.2f}/s ({parallel} × 1/{floor_seconds * 1000:.0f} ms)",
        f"met ({share:.0%} of floor)" if share >= TARGET_SHARE else f"gap: {share:.0%} of floor",
    )
    per_enrollment = hashes / ENROLLMENTS
    report(
        f"password hashes per enrollment, {label}",
        f"{per_enrollment:.2f} ({hashes} for {ENROLLMENTS})",
        "exactly 1",
        "",
        "met" if hashes == ENROLLMENTS else f"gap: {hashes - ENROLLMENTS:+d} hashes",
    )
    return []


def main():
    setup_django()
    from django.contrib.auth.hashers import make_password

    run_id = os.urandom(4).hex()
    password_hash = make_password(PASSWORD)
    failed = False
    for label, profile, federated, method in MODES:
        failures = run_mode(label, profile, federated, method, run_id, password_hash)
        if failures:
            failed = True
            log(f"{label}: {len(failures)} enrollment(s) failed:")
            for failure in failures[:10]:
                log(f"  {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        log(f"bench: {error}")
        sys.exit(2)
