"""The benchmark harness's own moving parts, and the workloads' seeding and client side against a live
server (bench/run itself, with gunicorn and PostgreSQL, is exercised by running it)."""
import http.server
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from django.db import connection
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

from mdmportal import settings as production_settings

from bench import _harness
from bench._hashers import CountingPBKDF2PasswordHasher, hashes_counted
from tests.test_simulator import enrollment_server  # noqa: F401  (the live server fixture)


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


@pytest.fixture
def bench_settings(monkeypatch):
    """bench/settings.py as a bench server loads it, under the environment the test sets first."""
    def load(**environment):
        for name in ("BENCH_PASSWORD_HASH_LOG", "BENCH_QUERY_LOG"):
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("bench.settings", None)
        return importlib.import_module("bench.settings")

    yield load
    sys.modules.pop("bench.settings", None)


def test_bench_settings_count_hashes_and_queries_when_bench_run_asks(bench_settings, tmp_path):
    hashes, queries = str(tmp_path / "hashes"), str(tmp_path / "queries")
    counted = bench_settings(BENCH_PASSWORD_HASH_LOG=hashes, BENCH_QUERY_LOG=queries)
    assert (counted.BENCH_PASSWORD_HASH_LOG, counted.BENCH_QUERY_LOG) == (hashes, queries)
    assert counted.PASSWORD_HASHERS == ["bench._hashers.CountingPBKDF2PasswordHasher"]
    assert counted.MIDDLEWARE == ["bench._queries.QueryCountMiddleware", *production_settings.MIDDLEWARE]
    assert counted.DATABASES == production_settings.DATABASES  # the production settings otherwise


def test_bench_settings_without_the_hooks_are_the_production_settings(bench_settings):
    plain = bench_settings()
    assert plain.MIDDLEWARE == production_settings.MIDDLEWARE
    assert getattr(plain, "PASSWORD_HASHERS", None) == getattr(production_settings, "PASSWORD_HASHERS", None)


def test_production_settings_have_no_bench_hooks():
    assert not [name for name in dir(production_settings) if name.startswith("BENCH_")]


def test_table_lists_reported_rows_and_failed_workloads(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    _harness.report("enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met")
    table = _harness.table(str(results), ["sessions"]).splitlines()
    assert table[0].split("|")[1].strip() == "workload"
    assert [cell.strip() for cell in table[2].split("|")[1:-1]] == ["enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met"]
    assert "FAILED" in table[3] and "sessions" in table[3]
    assert json.loads(results.read_text())["figure"] == "2.00/s"


# --- bench/enroll.py's Entra ID mode and its floor --------------------------------------------------

def test_bench_entra_tenant_switches_entra_on_through_its_jwks_mirror_and_mints_tokens_the_server_accepts(db):
    from bench.enroll import EntraTenant
    from enrollment import entra
    from enrollment.models import EntraSettings, JwksSet

    with EntraTenant("unit") as tenant:
        tenant.configure()
        config = EntraSettings.get()
        assert config.is_ready and config.jwks_mirror_url == tenant.mirror_url
        imported = JwksSet.objects.get(active=True)
        assert (imported.source, imported.key_ids) == (JwksSet.Source.MIRROR, [tenant.kid])
        (who,) = tenant.credentials("entra", 1)
        claims = entra.validate(who.secret)
        assert (claims.upn, claims.tenant_id, who.user) == (who.name, tenant.tenant_id, None)
        assert tenant.check_seconds() > 0
    # Left as found: the other modes need discovery to answer OnPremise again.
    assert not EntraSettings.get().enabled
    assert not JwksSet.objects.filter(active=True).exists()


def test_bench_entra_mode_enrolls_simulated_pcs_recorded_for_the_users_made_from_their_tokens(
        enrollment_server, monkeypatch):  # noqa: F811
    from bench import enroll as bench
    from enrollment.models import Device

    monkeypatch.setenv("BENCH_CLIENTS", "1")  # SQLite: one writer at a time
    mode = next(mode for mode in bench.MODES if mode.entra)
    with bench.EntraTenant("e2e") as tenant:
        tenant.configure()
        credentials = tenant.credentials("entra", 2)
        _, enrolled, failures = bench.enroll_all(enrollment_server.url, credentials, bench.new_keys(2), mode)
    assert failures == [] and len(enrolled) == 2
    assert [step.name for step in enrolled[0][1].steps] == ["probe", "discover", "terms", "policies", "keygen", "enroll"]
    assert bench.check_recorded(enrolled, mode.method) == []
    # The check can fail: a device recorded for someone else is reported.
    Device.objects.filter(device_id=enrolled[0][1].device_id).update(user=None)
    assert len(bench.check_recorded(enrolled, mode.method)) == 1


def test_request_floor_adds_timed_empty_requests_to_the_crypto_and_says_so(enrollment_server, monkeypatch):  # noqa: F811
    from bench import enroll as bench

    monkeypatch.setenv("BENCH_CLIENTS", "2")
    monkeypatch.setenv("BENCH_WORKERS", "1")
    count = 6
    floor = bench.request_floor(enrollment_server.url, count, 4 * count, [("1 signature", 0.004)])
    # Never better than the crypto alone on one worker, nor than the empty requests alone.
    assert 0 < floor.rate < 1 / 0.004
    assert floor.text.startswith(f"{floor.rate:.1f}/s: 4 empty requests at ")
    assert floor.text.endswith("+ (1 signature 4.0 ms) ÷ 1 worker")


def test_in_process_enrollment_profiler_counts_each_request_kind(transactional_db, settings):
    """bench/_profile_enroll.py: the simulator's requests served by the WSGI handler in this process,
    each request kind's CPU and SQL counted, the RST's statements among them."""
    from django.core.wsgi import get_wsgi_application

    from bench import _profile_enroll as profile
    from bench.enroll import new_keys, seed_package
    from enrollment.models import Device
    from tests.factories import OrganisationFactory
    from tests.factories_enrollment import CertificateAuthorityFactory

    url = "http://127.0.0.1:8000"
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    OrganisationFactory(enrollment_base_url=url)
    CertificateAuthorityFactory(issuing=True)
    meter = profile.Meter(profile=False)
    simulator_class = profile.in_process_simulator(get_wsgi_application(), meter)
    who = seed_package("profile", 2)[0]  # room for two devices: the plain run and the profiled one

    result = simulator_class(url, who.name, who.secret, private_key=new_keys(1)[0], provisioning_package=True).run()

    assert Device.objects.get(device_id=result.device_id).pin_enrollment == who.pin_enrollment
    assert set(meter.cpu) == {"discovery GET", "discovery POST", "policies POST", "RST POST"}
    assert all(len(times) == 1 and times[0] > 0 for kind, times in meter.cpu.items() if kind != "discovery GET")
    assert meter.queries["discovery GET"] == [0] and meter.queries["RST POST"][0] >= 10

    # Profiled: every kind of request has its own profile, whose calls are that request's alone.
    import pstats

    meter = profile.Meter(profile=["tottime"])
    simulator_class = profile.in_process_simulator(get_wsgi_application(), meter)
    simulator_class(url, who.name, who.secret, private_key=new_keys(1)[0], provisioning_package=True).run()
    calls = {kind: pstats.Stats(profiler).total_calls for kind, profiler in meter.profilers.items()}
    assert set(calls) == set(meter.cpu) and calls["RST POST"] > calls["discovery POST"] > calls["discovery GET"] > 0


# --- CPU per operation and the scale-out set-up (bench/_harness.py) ---------------------------------

def test_cpu_meter_counts_processes_that_appear_between_its_snapshots_with_all_their_cpu():
    started = []

    def current():
        return [process.pid for process in started]

    meter = _harness.CpuMeter(current)
    assert meter.before == {}
    # A process that starts after the first snapshot (a worker restarted, a backend opened) and burns CPU.
    process = subprocess.Popen([sys.executable, "-c", "import sys\nx = 0\nfor i in range(3_000_000): x += i\n"
                                "sys.stdin.read()"], stdin=subprocess.PIPE)
    started.append(process)
    try:
        for _ in range(200):
            if (_harness.cpu_seconds(process.pid) or 0) >= 0.05:
                break
            time.sleep(0.05)
        assert meter.seconds() >= 0.05
        assert meter.gone == 0
    finally:
        process.communicate(b"")


def test_cpu_spent_adds_up_by_side_and_says_per_operation():
    first = _harness.CpuSpent(gunicorn=1.0, postgresql=0.5, client=0.2)
    second = _harness.CpuSpent(gunicorn=1.0, postgresql=0.5, client=0.2, nginx=0.1)
    second.connections = 3
    total = first + second
    assert total.server == 3.1 and total["client"] == 0.4 and total.connections == 3
    assert total.per(100)["gunicorn"] == 20.0
    text = total.text(100, "session")
    assert text.startswith("server 31.0 ms/session (gunicorn 20.0 + nginx 1.0 + PostgreSQL 10.0)")
    assert "load generator 4.0 ms" in text and "3 short connections not counted" in text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bench's backends are PostgreSQL's")
def test_server_cpu_measures_the_bench_database_backends(db, monkeypatch):
    for name in [name for name in os.environ if name.startswith(("BENCH_SERVER_PID_", "BENCH_NGINX_PID",
                                                                                   "BENCH_WORKER_PID"))]:
        monkeypatch.delenv(name)
    from django.db import connection

    meter = _harness.ServerCpu(in_process=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM generate_series(1, 300000)")
    spent = meter.stop()
    if connection.vendor == "postgresql":
        assert spent["postgresql"] > 0  # this process's own backend, as the work runs here
    assert spent["gunicorn"] == spent["celery"] == spent["nginx"] == 0
    assert spent["client"] > 0


def test_nginx_config_sends_one_port_to_the_first_node_and_the_other_to_all(tmp_path):
    """The configuration bench/run --nodes gives nginx, run by Debian's nginx in front of two stand-in
    nodes (plain HTTP servers that say which node they are)."""
    from tests.services import free_port, service_missing

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        service_missing("nginx is not installed")

    def node(name):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"{name} {self.headers.get('X-SSL-Client-Cert', '')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    nodes = [node("node1"), node("node2")]
    one_port, all_port = free_port(), free_port()
    upstreams = [f"127.0.0.1:{server.server_address[1]}" for server in nodes]
    (tmp_path / "nginx.conf").write_text(_harness.nginx_config(tmp_path, one_port, all_port, upstreams))
    process = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def get(port):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/ManagementServer/MDM.svc",
                                             headers={"X-SSL-Client-Cert": "pem"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read().decode()

        for _ in range(100):
            try:
                get(one_port)
                break
            except OSError:
                time.sleep(0.1)
        assert {get(one_port) for _ in range(4)} == {"node1 pem"}  # the forwarded certificate header passes
        assert {get(all_port) for _ in range(4)} == {"node1 pem", "node2 pem"}  # round robin
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in nodes:
            server.shutdown()


def test_layers_sum_exclusive_time_per_layer_with_builtins_counted_in_their_callers_layer():
    """bench/_layers.py: where a profiled request's time goes, by layer of the stack."""
    import cProfile
    import pstats

    from bench import _layers

    site = os.path.join("x", "site-packages")
    assert _layers.layer_of(os.path.join(site, "psycopg", "cursor.py"), "execute").startswith("psycopg")
    assert _layers.layer_of(os.path.join(site, "django", "db", "models", "base.py"), "__init__").startswith("Django ORM")
    assert _layers.layer_of(os.path.join(site, "django", "core", "handlers", "wsgi.py"), "__call__").startswith(
        "Django request handling")
    assert _layers.layer_of("~", "<built-in method builtins.sorted>") is None
    assert _layers.layer_of(os.path.abspath(__file__), "test") == "ours: tests/"

    def busy():
        return [sorted(range(2000), reverse=True) for _ in range(200)]

    profiler = cProfile.Profile()
    profiler.runcall(busy)
    found = _layers.layers(pstats.Stats(profiler))
    seconds, calls = found["ours: tests/"]
    # sorted() (a built-in) did nearly all the work, called from this file: it counts here.
    assert seconds >= 0.9 * sum(s for s, _ in found.values()) and calls >= 200
    lines = _layers.report(pstats.Stats(profiler), 1, "call")
    assert "ours: tests/" in lines[1]
