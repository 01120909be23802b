"""What bench/run and the workloads share: preparing the services, reporting rows, the final table.

bench/run calls the command-line side (`python -m bench._harness prepare|port|wait|wait-worker|nginx-config|
table`);
workloads import `setup_django`, `server_url`, `workers`, `report`, `log`, `median_seconds`,
`empty_requests_seconds`, `CpuMeter`, `ServerCpu`.

A workload reports rows by appending JSON lines to the file named by BENCH_RESULTS; bench/run turns
all of them into one table once every workload has run.
"""
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
COLUMNS = ("workload", "figure", "target", "floor (same run)", "result")


class BenchError(Exception):
    """A setup problem the operator must fix; printed without a traceback."""


# --- for workloads -------------------------------------------------------------------------------

def setup_django():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdmportal.settings")
    import django

    django.setup()


# Production settings as bench/run gives its servers (DEBUG off, persistent connections; plain HTTP stands
# for nginx's TLS), for the in-process profiles (bench/_profile_*.py), which add their own.
PROFILE_SETTINGS = {
    "DEBUG": "false", "CONN_MAX_AGE": "600", "SECURE_SSL_REDIRECT": "false", "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false", "ALLOWED_HOSTS": "127.0.0.1", "EMAIL_URL": "dummymail://",
}


def setup_in_process(added, *, settings=None, ca=True):
    """An in-process profile's start: DATABASE_URL must be a PostgreSQL database of the caller's own
    (`added`: what the profile adds to it), production settings (PROFILE_SETTINGS, then `settings`),
    Django set up, the database migrated and, with `ca`, the certificate authority created."""
    import secrets

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit(f"set DATABASE_URL to a PostgreSQL database of your own (it is migrated, {added} are added)")
    os.environ.update({**PROFILE_SETTINGS, **(settings or {})})
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("CA_KEY_PASSPHRASE", "bench-profile-passphrase")
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if ca:
        call_command("init_ca", verbosity=0)


def server_url(profile):
    """Base URL of the bench server started for `profile` (bench/run exports BENCH_URL_<PROFILE>)."""
    name = f"BENCH_URL_{profile.upper()}"
    url = os.environ.get(name, "")
    if not url:
        raise BenchError(f"{name} is not set: run the workloads through bench/run, which starts the servers")
    if urllib.parse.urlsplit(url).hostname not in LOCAL_HOSTS:
        raise BenchError(f"{name}={url} is not on 127.0.0.1: the benchmarks only talk to this machine")
    return url


def workers():
    """gunicorn workers per bench server."""
    return int(os.environ.get("BENCH_WORKERS") or os.cpu_count() or 1)


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def report(workload, figure, target="", floor="", result=""):
    """One row of the final table."""
    row = dict(zip(COLUMNS, (workload, figure, target, floor, result)))
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as results:
            results.write(json.dumps(row) + "\n")
    log(" | ".join(str(value) for value in row.values()))


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """Process ids whose parent is `pid` (gunicorn's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


class CpuMeter:
    """CPU seconds that processes spend between two snapshots. `pids` is a set of process ids, or a
    function returning the current ones: then a process that appeared since the first snapshot (a
    gunicorn worker restarted, a PostgreSQL backend opened) counts with all its CPU, as all of it was
    spent in between. Blind only to processes that came and went between the snapshots (`gone` says
    how many it saw go)."""

    def __init__(self, pids):
        self.find = pids if callable(pids) else (lambda: pids)
        self.before = {pid: cpu_seconds(pid) for pid in self.find()}
        self.before = {pid: seconds for pid, seconds in self.before.items() if seconds is not None}

    def seconds(self):
        pids = set(self.before) | set(self.find())
        after = {pid: cpu_seconds(pid) for pid in pids}
        self.gone = sum(1 for pid in self.before if after[pid] is None)
        return sum(after[pid] - self.before.get(pid, 0.0) for pid in pids if after[pid] is not None)


def database_backends(include_own=False):
    """Process ids of the PostgreSQL backends connected to the bench database (but this process's own,
    unless `include_own`)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                       + ("" if include_own else " AND pid <> pg_backend_pid()"))
        return {pid for (pid,) in cursor.fetchall()}


def database_sessions():
    """Connections opened to the bench database so far (PostgreSQL 14+ statistics, flushed within
    about a second), or None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return row[0] if row else None


def _pid_variables(prefix):
    return [int(value) for name, value in os.environ.items() if name.startswith(prefix) and value.isdigit()]


class ServerCpu:
    """Where the CPU of a workload's span went, by side: the gunicorn workers of every bench server
    (bench/run exports each master's id as BENCH_SERVER_PID_<PROFILE>), nginx when bench/run started
    it (BENCH_NGINX_PID, its workers), the Celery worker's processes (BENCH_WORKER_PID), the PostgreSQL
    backends connected to the bench database (persistent connections, CONN_MAX_AGE; a backend opened
    during the span counts whole; one that came and went is missed and counted apart as
    `connections`), and this process, the load generator, apart from the server. `in_process`: the
    work runs in this process (an import run eagerly), whose backend then counts with PostgreSQL.

        meter = ServerCpu()
        ...the workload's span...
        cpu = meter.stop()        # {"gunicorn": s, "nginx": s, "celery": s, "postgresql": s, "client": s}
        cpu.per(operations)       # the same in milliseconds per operation
    """

    SERVER = ("gunicorn", "nginx", "celery", "postgresql")

    def __init__(self, in_process=False):
        masters = _pid_variables("BENCH_SERVER_PID_")
        self.meters = {
            "gunicorn": CpuMeter(lambda: [pid for master in masters for pid in children(master)]),
            "nginx": CpuMeter(lambda: [pid for master in _pid_variables("BENCH_NGINX_PID") for pid in
                                       [master, *children(master)]]),
            "celery": CpuMeter(lambda: [pid for master in _pid_variables("BENCH_WORKER_PID")
                                        for pid in [master, *children(master)]]),
        }
        from django.db import connection

        self.sessions = None
        if connection.vendor == "postgresql":
            self.meters["postgresql"] = CpuMeter(lambda: database_backends(include_own=in_process))
            self.sessions = database_sessions()
        self.client = time.process_time()

    def stop(self):
        client = time.process_time() - self.client
        spent = CpuSpent({name: meter.seconds() for name, meter in self.meters.items()})
        spent["client"] = client
        if self.sessions is not None:
            time.sleep(1.1)  # the statistics are flushed about once a second
            after = database_sessions()
            spent.connections = max(0, (after or 0) - self.sessions)
        return spent


class CpuSpent(dict):
    """CPU seconds by side (ServerCpu.stop)."""

    connections = 0

    @property
    def server(self):
        return sum(self.get(name, 0.0) for name in ServerCpu.SERVER)

    def __add__(self, other):
        total = CpuSpent({name: self.get(name, 0.0) + other.get(name, 0.0) for name in {*self, *other}})
        total.connections = self.connections + other.connections
        return total

    def per(self, operations):
        """Milliseconds per operation, by side."""
        return {name: seconds * 1000 / operations for name, seconds in self.items()}

    def text(self, operations, unit):
        """"server 12.3 ms/<unit> (gunicorn 8.0 + PostgreSQL 4.3); client 2.0 ms" for a table cell."""
        per = self.per(operations)
        names = {"gunicorn": "gunicorn", "nginx": "nginx", "celery": "Celery", "postgresql": "PostgreSQL"}
        parts = " + ".join(f"{names[name]} {per[name]:.1f}" for name in ServerCpu.SERVER if self.get(name))
        unseen = f"; {self.connections} short connections not counted" if self.connections else ""
        return (f"server {self.server * 1000 / operations:.1f} ms/{unit} ({parts or 'none seen'}); "
                f"load generator {per['client']:.1f} ms{unseen}")


def log(message):
    print(message, file=sys.stderr, flush=True)


def median_seconds(function, repeat):
    """Median wall time of `repeat` calls of function()."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def empty_requests_seconds(url, count, clients):
    """Wall seconds of `count` GETs of the keyless discovery probe (an empty 200 without SQL) through
    the server at `url`, from `clients` threads: what requests cost on this machine when the view does
    nothing, the clients' own work included. Workloads measure it next to their own requests. Each is
    the probe a simulated device sends first (simulator.Simulator.probe), so the floor goes through the
    very transport of the enrollments and check-ins it is compared with; one Simulator per client
    thread, made before the clock."""
    from concurrent.futures import ThreadPoolExecutor

    from simulator import Simulator

    simulators = [Simulator(url, "floor@bench.invalid", timeout=30) for _ in range(clients)]
    remaining = iter(range(count))
    lock = threading.Lock()

    def loop(simulator):
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            simulator.probe()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(loop, simulator) for simulator in simulators]:
            future.result()
    return time.perf_counter() - started


# --- for bench/run ---------------------------------------------------------------------------------

def _require_local(variable, url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise BenchError(f"{variable} points at {host!r}: the benchmarks only talk to 127.0.0.1")


def prepare(recreate):
    """Check that PostgreSQL and Redis answer; (re)create the bench database."""
    import psycopg
    import redis

    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    _require_local("DATABASE_URL", database_url)
    _require_local("REDIS_URL", redis_url)
    parts = urllib.parse.urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchError(f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {parts.scheme}://")
    name = parts.path.lstrip("/")
    if not name:
        raise BenchError("DATABASE_URL names no database")
    maintenance = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists and recreate:
                connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise BenchError(f"PostgreSQL is not reachable at {parts.hostname}:{parts.port or 5432} "
                         f"({str(error).strip().splitlines()[0]}); start it or set DATABASE_URL") from None
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as error:
        raise BenchError(f"Redis is not reachable at {redis_url} ({error}); start it or set REDIS_URL") from None
    log(f"database {name} {'re-created' if recreate else 'ready'}; Redis answers at {redis_url}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url, pid, timeout):
    """Poll the discovery probe until the server answers 200; fail if its process died."""
    deadline = time.monotonic() + timeout
    probe = url.rstrip("/") + "/EnrollmentServer/Discovery.svc"
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise BenchError(f"the server for {url} exited while starting") from None
        try:
            with urllib.request.urlopen(probe, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise BenchError(f"the server for {url} did not answer within {timeout} s")


def wait_until_worker_ready(log_path, pid, timeout):
    """Wait for the Celery worker's "ready." line in its log; fail if its process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise BenchError("the Celery worker exited while starting") from None
        try:
            if "ready." in Path(log_path).read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.3)
    raise BenchError(f"the Celery worker was not ready within {timeout} s")


def nginx_config(folder, one_port, all_port, upstreams):
    """nginx.conf for `bench/run --nodes N`, in `folder`: a foreground nginx whose 127.0.0.1:`one_port`
    proxies to the first upstream and 127.0.0.1:`all_port` to all of them (round robin), so that one
    and N nodes are measured through the same proxy. Plain HTTP stands for deploy/nginx.conf's TLS
    (the client-certificate header the bench's clients send passes through, as nginx sets it from the
    handshake there); gunicorn's sync workers close every connection, so no upstream keepalive."""
    import grp
    import pwd

    folder = Path(folder)
    user = ""
    if os.geteuid() == 0:  # the workers would otherwise drop to nobody and miss the private folder
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp = "\n".join(f"    {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi",
                                                                           "uwsgi", "scgi"))
    proxy = """        location / {{
            proxy_pass http://{name};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 60s;
        }}"""
    servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
    return f"""daemon off;
{user}
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    client_max_body_size 2m;
    upstream one {{
        server {upstreams[0]};
    }}
    upstream all {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{one_port};
{proxy.format(name="one")}
    }}
    server {{
        listen 127.0.0.1:{all_port};
{proxy.format(name="all")}
    }}
}}
"""


def table(results_path, failed):
    """The Markdown table of every reported row, plus one row per workload that failed."""
    rows = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as results:
            rows = [json.loads(line) for line in results if line.strip()]
    for name in failed:
        rows.append(dict(zip(COLUMNS, (name, "—", "—", "—", "FAILED (see its output above)"))))
    cells = [list(COLUMNS)] + [[str(row.get(column, "")) for column in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values):
        return "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths)) + " |"

    lines = [line(cells[0]), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [line(values) for values in cells[1:]]
    return "\n".join(lines)


def main(argv):
    command, *args = argv
    if command == "prepare":
        prepare(recreate=args == ["--recreate"])
    elif command == "port":
        print(free_port())
    elif command == "wait":
        url, pid, timeout = args
        wait_until_serving(url, int(pid), float(timeout))
    elif command == "wait-worker":
        log_path, pid, timeout = args
        wait_until_worker_ready(log_path, int(pid), float(timeout))
    elif command == "nginx-config":
        folder, one_port, all_port, *upstreams = args
        print(nginx_config(folder, one_port, all_port, upstreams))
    elif command == "table":
        results_path, *failed = args
        print(table(results_path, failed))
    else:
        raise BenchError(f"unknown command {command!r}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(2)
