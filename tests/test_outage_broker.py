"""Redis down while invitations are sent: the console answers at once and says the emails are
queued; once Redis is back, the sweep re-queues them and each email arrives exactly once.

Redis here is a private `redis-server` (tests/private_services.py) that the test stops and starts,
used as the broker by this process and by a real Celery worker.

"At once" is counted, not timed (a busy machine stretches any clock): while Redis is down, this
process's broker is a dead port whose listener counts each connection the console's request makes to
it and closes it (its own port, so that the worker's reconnections are not counted)."""
import socket
import threading
import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from invitations.models import InvitationEmail
from tests.factories import UserFactory
from tests.private_services import RedisServer, sweep_until_sent
from tests.services import free_port, start_worker, use_broker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Connections one publish makes to a dead broker: the attempt and the one retry that
# CELERY_BROKER_TRANSPORT_OPTIONS (max_retries=1) allows. Celery's default retries for minutes.
BROKER_ATTEMPTS = 2


class CountingDeadPort:
    """Redis down, counted: a listener on its port that closes every connection at once (the client
    gets a connection error, as from a dead broker) and counts them."""

    def __init__(self):
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self.listener.settimeout(0.05)
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            self._accept()

    def _accept(self):
        try:
            connection, _ = self.listener.accept()
        except (TimeoutError, BlockingIOError):
            return False
        connection.close()
        self.connections += 1
        return True

    def close(self):
        """Stop listening; the count then includes every connection the kernel accepted."""
        self.stopping.set()
        self.thread.join()
        self.listener.setblocking(False)
        while self._accept():
            pass
        self.listener.close()
        return self.connections


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def worker(private_redis, postgres, smtp_server, tmp_path, settings):
    from mdmportal.celery import app

    worker = start_worker(broker_url=private_redis.url, database=postgres, smtp_port=smtp_server.port,
                          log=tmp_path / "worker.log")
    settings.INVITATION_SWEEP_AFTER_SECONDS = 0
    broker, eager = app.conf.broker_url, app.conf.task_always_eager
    app.conf.task_always_eager = False
    use_broker(private_redis.url)
    yield worker
    worker.stop()
    app.conf.task_always_eager = eager
    use_broker(broker)


def test_invitations_sent_while_redis_is_down_arrive_exactly_once_after_it_returns(
        console, worker, private_redis, smtp_server, organisation):
    users = [UserFactory(email=f"redis-outage{i}@example.com") for i in range(5)]
    smtp_server.clear()

    private_redis.stop()
    dead_port = CountingDeadPort()
    use_broker(f"redis://127.0.0.1:{dead_port.port}/0")
    response = console.post(reverse("admin:accounts_user_changelist"),
                            {"action": "send_invitations", "_selected_action": [u.pk for u in users], "post": "yes"})
    attempts = dead_port.close()
    use_broker(private_redis.url)

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Invitations queued for 5 users."]
    assert 1 <= attempts <= BROKER_ATTEMPTS  # tried, then gave up: no retry loop holding the request
    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.QUEUED}
    assert InvitationEmail.objects.count() == 5
    time.sleep(1)
    assert smtp_server.messages == []

    private_redis.start()
    sweep_until_sent(5)
    time.sleep(3)  # room for a duplicate to show up

    assert sorted(m["To"] for m in smtp_server.messages) == sorted(u.email for u in users)
    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.SENT}
    assert "Connection to broker lost" in worker.output()
