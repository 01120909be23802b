"""A Celery worker killed mid-task (SIGKILL of the pool process running it). With acks_late and
reject_on_worker_lost the task is redelivered; an email is still sent at most once (the claim in
invitations/sending.py), the one stuck in "sending" is reported by the sweep, and the enrollment-URL
re-issue resumes where it stopped, so nobody gets it twice."""
import os
import re
import signal
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Organisation
from invitations import sending
from invitations.models import Invitation, InvitationEmail, UrlRotation
from tests.factories import InvitationFactory, UserFactory
from tests.private_services import RedisServer, sweep_until_sent
from tests.services import start_worker, use_broker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CHUNK = 2


@pytest.fixture(scope="module")
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(private_redis, postgres, smtp_server, tmp_path_factory):
    worker = start_worker(broker_url=private_redis.url, database=postgres, smtp_port=smtp_server.port,
                          log=tmp_path_factory.mktemp("worker") / "worker.log", pool="prefork",
                          app="tests.outage_celery", env={"OUTAGE_FANOUT_CHUNK": str(CHUNK)})
    yield worker
    worker.stop()


@pytest.fixture
def live(worker, private_redis, settings, monkeypatch):
    from mdmportal.celery import app

    settings.INVITATION_SWEEP_AFTER_SECONDS = 0
    monkeypatch.setattr(sending, "FANOUT_CHUNK", CHUNK)
    broker, eager = app.conf.broker_url, app.conf.task_always_eager
    app.conf.task_always_eager = False
    use_broker(private_redis.url)
    yield worker
    app.conf.task_always_eager = eager
    use_broker(broker)


def kill_running_task(worker):
    """SIGKILL the pool process, as the OOM killer or a crash would, and wait for its replacement."""
    children = worker.pool_children()
    assert children, worker.output()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fresh = set(worker.pool_children()) - set(children)
        if fresh:
            return
        time.sleep(0.1)
    pytest.fail(f"no new pool process after the kill:\n{worker.output()}")


def wait(condition, timeout=60, what=""):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.1)


def test_worker_killed_while_sending_an_email_sends_nothing_twice_and_the_sweep_reports_it(
        live, smtp_server, organisation):
    users = [UserFactory(email=f"killed{i}@example.com") for i in range(5)]
    victim = users[1]
    smtp_server.clear()
    smtp_server.hold(victim.email)

    sending.invite(users)
    assert smtp_server.holding.wait(60), live.output()
    kill_running_task(live)
    smtp_server.release()

    others = [u for u in users if u != victim]
    wait(lambda: InvitationEmail.objects.filter(status=InvitationEmail.Status.SENT).count() == len(others),
         what="the other emails")
    time.sleep(3)  # the redelivered task has run by now (the queue is empty); room for a duplicate

    received = sorted(m["To"] for m in smtp_server.messages)
    assert received == sorted(u.email for u in users)  # the victim's once (it reached the server), none twice
    stuck = InvitationEmail.objects.get(invitation__user=victim)
    assert stuck.status == InvitationEmail.Status.SENDING and stuck.attempts == 1
    assert "WorkerLostError" in live.output() or "SIGKILL" in live.output()

    # An hour later the sweep gives up on it rather than risk a second email, and says so.
    InvitationEmail.objects.filter(pk=stuck.pk).update(queued_at=timezone.now() - timedelta(hours=2))
    requeued, abandoned = sending.sweep()
    stuck.refresh_from_db()
    assert (requeued, abandoned) == (0, 1)
    assert stuck.status == InvitationEmail.Status.FAILED and "interrupted while sending" in stuck.error
    time.sleep(1)
    assert len(smtp_server.to(victim.email)) == 1


def test_worker_killed_during_the_enrollment_url_reissue_resumes_it_without_duplicates(
        live, smtp_server, organisation):
    invitations = [InvitationFactory(user=UserFactory(email=f"reissue{i}@example.com")) for i in range(6)]
    smtp_server.clear()
    address = {"host": connection.settings_dict["HOST"] or "127.0.0.1",
               "port": connection.settings_dict["PORT"] or 5432,
               "dbname": connection.settings_dict["NAME"], "user": connection.settings_dict["USER"] or "postgres"}
    # The second batch's emails reference this invitation, so while its row is locked the re-issue's
    # second COMMIT waits (Django's foreign keys are checked at commit); the worker is killed right
    # there. PostgreSQL completes that commit once the lock goes, but the dead process never publishes
    # the batch's send tasks: the redelivered run skips the batch, and the sweep sends its emails.
    holder, watcher = psycopg.connect(**address), psycopg.connect(**address, autocommit=True)
    try:
        holder.execute(f"SELECT 1 FROM {Invitation._meta.db_table} WHERE id = %s FOR UPDATE",
                       [invitations[CHUNK].pk])
        rotation = sending.regenerate_enrollment_url(Organisation.get())
        wait(lambda: UrlRotation.objects.get(pk=rotation.pk).done == CHUNK and watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
            [address["dbname"]]).fetchone()[0], what="the re-issue to stop at its second batch")
        kill_running_task(live)
    finally:
        holder.close()
        watcher.close()

    wait(lambda: UrlRotation.objects.get(pk=rotation.pk).finished_at is not None, what="the re-issue to finish")
    sweep_until_sent(len(invitations))
    wait(lambda: len(smtp_server.messages) >= len(invitations),
         what=lambda: f"the emails: {[m['To'] for m in smtp_server.messages]} "
                      f"{list(InvitationEmail.objects.order_by('pk').values_list('pk', 'invitation__user__email', 'status', 'queued_at'))}\n{live.output()}")
    time.sleep(3)

    rotation.refresh_from_db()
    assert len(re.findall(r"reissue_invitations\[[0-9a-f-]+\] received", live.output())) == 2  # redelivered
    assert (rotation.total, rotation.done) == (6, 6)
    for invitation in invitations:
        assert invitation.emails.filter(reason=InvitationEmail.Reason.REISSUE).count() == 1
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(i.user.email for i in invitations)
