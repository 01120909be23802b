"""Redis down while invitations are sent: the console answers at once and says the emails are
queued; once Redis is back, the sweep re-queues them and each email arrives exactly once.

Redis here is a private `redis-server` (tests/private_services.py) that the test stops and starts,
used as the broker by this process and by a real Celery worker."""
import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from invitations.models import InvitationEmail
from tests.factories import UserFactory
from tests.private_services import RedisServer, sweep_until_sent
from tests.services import start_worker, use_broker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


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
    started = time.monotonic()
    response = console.post(reverse("admin:invitations_user_changelist"),
                            {"action": "send_invitations", "_selected_action": [u.pk for u in users]})
    took = time.monotonic() - started

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Invitations queued for 5 users."]
    assert took < 10
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
