"""Private Redis and PostgreSQL servers for the outage tests, which stop and restart them.

The machine's shared servers are never stopped: each test gets its own instance on a free port,
in a temporary directory, and removes it afterwards.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.services import free_port, service_missing


class RedisServer:
    """`redis-server` without persistence, as a child process: stop() is an outage, start() the
    recovery (with an empty database, as after a crash of a cache-only Redis)."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            service_missing("redis-server is not installed (private Redis for outage tests)")
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _postgres_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return found[-1] if found else shutil.which(name)


class PostgresCluster:
    """A throw-away PostgreSQL cluster (initdb in a temporary directory) on a free port. PostgreSQL
    refuses to run as root, so as root it runs as the `postgres` system user."""

    def __init__(self):
        self.initdb, self.pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            service_missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                service_missing("running as root without a `postgres` user to run a private PostgreSQL")
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="mdmportal-outage-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.running = False
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args):
        command = list(args)
        if self.user:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n{self.server_log()}")
        return result

    def server_log(self):
        try:
            with open(self.log) as log:
                return log.read()[-4000:]
        except OSError:
            return ""

    def init(self):
        self._run(self.initdb, "-D", self.data, "-U", "postgres", "--auth", "trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self):
        # Fast and unsafe settings: this cluster lives for one test module.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(self.pg_ctl, "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        self.running = True
        return self

    def stop(self):
        """A fast shutdown, as a restart by the operator: sessions are cut, new ones refused."""
        self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")
        self.running = False

    def create_database(self, name):
        psql = _postgres_bin("psql")
        self._run(psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", f'CREATE DATABASE "{name}"')

    def destroy(self):
        try:
            self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def sweep_until_sent(count, timeout=90):
    """What beat does every minute, faster: re-queue what is still queued until `count` emails are sent."""
    from invitations import sending
    from invitations.models import InvitationEmail

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if InvitationEmail.objects.filter(status=InvitationEmail.Status.SENT).count() >= count:
            return
        sending.sweep()
        time.sleep(1)
