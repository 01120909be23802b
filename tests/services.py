"""Fixtures for tests that need the real services: PostgreSQL, a Celery worker on Redis, SMTP.

Without the services these tests are skipped with a reason naming what is missing; with CI=true a
missing service fails the run instead, so CI can never pass by skipping them.
"""
import asyncio
import email
import email.policy
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES_REQUIRED = os.environ.get("CI", "").lower() == "true"


def isolated(env):
    """`env` for a Django process a test starts, made to read none of the developer's working files: no
    `.env` (MDMPORTAL_ENV_FILE empty, whatever `env` says) and no `db.sqlite3` (the default database),
    since `env` must name its DATABASE_URL."""
    assert env.get("DATABASE_URL"), "a process started by a test names its DATABASE_URL (not db.sqlite3)"
    return {**env, "MDMPORTAL_ENV_FILE": ""}


def service_missing(reason):
    if SERVICES_REQUIRED:
        pytest.fail(f"required service missing: {reason} (CI=true)", pytrace=False)
    pytest.skip(f"service test skipped: {reason}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpSink:
    """What the local SMTP server received, parsed."""

    messages: list = field(default_factory=list)
    peers: list = field(default_factory=list)  # the client (host, port) of each message: its SMTP connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    # hold(address): the message to that address is received but its "250" waits for release(), so a
    # test can kill the sender in the middle of an SMTP transaction.
    held_address: str = ""
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)
            self.peers.append(session.peer)
        if self.held_address and parsed["To"] == self.held_address:
            self.holding.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
        return "250 Message accepted for delivery"

    def hold(self, address):
        self.holding.clear()
        self.released.clear()
        self.held_address = address

    def release(self):
        self.held_address = ""
        self.released.set()

    def to(self, address):
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)

    def clear(self):
        self.release()
        with self.lock:
            self.messages.clear()
            self.peers.clear()


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        service_missing("REDIS_URL is not set (Celery worker on Redis)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture(scope="session")
def postgres(django_db_setup, django_db_blocker):
    from django.db import connection

    if connection.vendor != "postgresql":
        service_missing("DATABASE_URL is not PostgreSQL")
    return connection.settings_dict


@pytest.fixture
def plan(postgres):
    """explain(queryset): PostgreSQL's plan of a queryset with sequential scans discouraged (for this
    test's transaction only), to show which index a look-up can use."""
    from django.db import connection

    def explain(queryset):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # ends with the test's transaction
        return queryset.explain()

    return explain


@pytest.fixture(scope="session")
def smtp_server():
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@dataclass
class Worker:
    process: subprocess.Popen
    queue: str
    log: Path

    def output(self):
        return self.log.read_text(errors="replace")

    def pool_children(self):
        """Pids of the prefork pool's child processes (the ones running tasks)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def database_url(settings_dict):
    db = settings_dict
    return (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
            f"/{db['NAME']}")


def start_worker(*, broker_url, database, smtp_port, log, pool="solo", app="mdmportal", env=None):
    """Start a real `celery worker` process and wait until it is ready. `app` may name a test app
    module (tests.outage_celery) that tunes the worker for a test."""
    from mdmportal.celery import app as celery_app

    queue = celery_app.conf.task_default_queue
    env = isolated({
        **os.environ,
        "DATABASE_URL": database_url(database),
        "REDIS_URL": broker_url,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "INVITATION_SWEEP_AFTER_SECONDS": "0",
        **(env or {}),
    })
    pool_args = ["--pool", "prefork", "--concurrency", "1"] if pool == "prefork" else ["--pool", pool]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", *pool_args, "--loglevel", "INFO",
             "--queues", queue, "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    worker = Worker(process, queue, log)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"celery worker did not start:\n{worker.output()}", pytrace=False)
        time.sleep(0.2)
    return worker


def purge_queue(broker_url):
    """Drop stale messages from an earlier, interrupted run."""
    from mdmportal.celery import app

    use_broker(broker_url)
    with app.connection_for_write() as conn:
        app.amqp.queues[app.conf.task_default_queue].bind(conn.default_channel).purge()


@pytest.fixture(scope="session")
def celery_worker(postgres, redis_url, smtp_server, tmp_path_factory):
    """A real `celery worker` process on Redis, using the test database and the local SMTP server."""
    purge_queue(redis_url)
    worker = start_worker(broker_url=redis_url, database=postgres, smtp_port=smtp_server.port,
                          log=tmp_path_factory.mktemp("celery") / "worker.log")
    yield worker
    worker.stop()


def use_broker(url):
    """Point this process's Celery app at another broker (a dead one in outage tests)."""
    from mdmportal.celery import app

    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def live_tasks(celery_worker, redis_url, settings):
    """Tasks published by this test go through Redis to the real worker (not in-process)."""
    from mdmportal.celery import app

    settings.INVITATION_SWEEP_AFTER_SECONDS = 0
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    use_broker(redis_url)
    yield celery_worker
    app.conf.task_always_eager = eager
