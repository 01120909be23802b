"""The benchmark harness's own moving parts, and the workloads' seeding and client side against a live
server (bench/run itself, with gunicorn and PostgreSQL, is exercised by running it)."""
import json

from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

from bench import _harness
from bench._hashers import CountingPBKDF2PasswordHasher, hashes_counted
from tests.test_simulator import enrollment_server  # noqa: F401  (fixture)


def test_counting_hasher_counts_every_hash_and_reads_default_hashes(settings, tmp_path, monkeypatch):
    log = tmp_path / "hashes"
    settings.BENCH_PASSWORD_HASH_LOG = str(log)
    monkeypatch.setattr(CountingPBKDF2PasswordHasher, "iterations", 1000)  # same work, less of it
    encoded = PBKDF2PasswordHasher().encode("correct horse", "s" * 22, iterations=1000)
    settings.PASSWORD_HASHERS = ["bench._hashers.CountingPBKDF2PasswordHasher"]
    assert hashes_counted(log) == 0
    assert check_password("correct horse", encoded)
    assert not check_password("wrong", encoded)
    assert make_password("correct horse", salt="s" * 22) == encoded
    assert hashes_counted(log) == 3


def test_table_lists_reported_rows_and_failed_workloads(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    _harness.report("enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met")
    table = _harness.table(str(results), ["sessions"]).splitlines()
    assert table[0].split("|")[1].strip() == "workload"
    assert [cell.strip() for cell in table[2].split("|")[1:-1]] == ["enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met"]
    assert "FAILED" in table[3] and "sessions" in table[3]
    assert json.loads(results.read_text())["figure"] == "2.00/s"


def test_checkin_workload_seeds_devices_that_run_full_sessions(enrollment_server, monkeypatch):
    """bench/checkin.py's seeding and sessions, as bench/run drives them, against a live server: every
    seeded device carries what the simulator's ManagementClient reads from a real enrollment (its
    certificate and that certificate's key), and runs a full two-message session that acknowledges
    every queued command."""
    from enrollment.models import Device, DeviceCommand

    from bench import checkin

    monkeypatch.setenv("BENCH_URL_ONPREMISE", enrollment_server.url)
    monkeypatch.setenv("BENCH_CLIENTS", "1")  # one client: the test server's SQLite takes one writer
    devices = checkin.seed("test", 2)
    for device, seeded in devices:
        assert device.pk and Device.objects.get(pk=device.pk).certificate_serial
        assert seeded.certificate.public_key().public_numbers() == seeded.private_key.public_key().public_numbers()
    checkin.queue_commands(devices, 3)
    _, latencies, failures = checkin.run_sessions(enrollment_server.url, devices)
    assert failures == []
    assert len(latencies) == 2
    assert checkin.unacknowledged(devices) == 0
    assert DeviceCommand.objects.filter(source="bench", status=DeviceCommand.Status.SUCCEEDED).count() == 2 * 3


def test_cpu_meter_counts_the_cpu_of_processes_it_watches():
    """bench/checkin.py's CPU per session (gunicorn workers, PostgreSQL backends) comes from these."""
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in _harness.children(os.getpid())
        meter = _harness.CpuMeter([os.getpid(), child.pid])
        deadline = _harness.cpu_seconds(os.getpid()) + 0.1
        while _harness.cpu_seconds(os.getpid()) < deadline:
            sum(range(10_000))
        assert meter.seconds() >= 0.09  # clock ticks, summed as floats
        assert meter.gone == 0
    finally:
        child.communicate(b"")
    assert _harness.cpu_seconds(child.pid) is None
    assert meter.seconds() >= 0.09 and meter.gone == 1
