"""A "Regenerate enrollment URL" whose re-issue task was lost (the broker down when it was requested, or
its messages gone) is resumed by the sweep, and runs of one rotation that meet never email an
invitation twice."""
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, connections
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import Organisation
from invitations import sending, tasks
from invitations.models import InvitationEmail, UrlRotation

from .factories import InvitationFactory, OrganisationFactory

pytestmark = pytest.mark.django_db


def reissues(invitation):
    return invitation.emails.filter(reason=InvitationEmail.Reason.REISSUE).count()


def age(rotation, seconds):
    """Time passes for the rotation: its start and last progress `seconds` ago."""
    past = timezone.now() - timedelta(seconds=seconds)
    UrlRotation.objects.filter(pk=rotation.pk).update(started_at=past, progress_at=None)


def test_a_rotation_requested_while_the_broker_was_down_is_resumed_by_the_sweep(
        django_capture_on_commit_callbacks, mailoutbox, settings):
    OrganisationFactory()
    invitations = [InvitationFactory() for _ in range(5)]
    with mock.patch.object(tasks.reissue_invitations, "delay", side_effect=OperationalError("broker down")):
        with django_capture_on_commit_callbacks(execute=True):
            rotation = sending.regenerate_enrollment_url(Organisation.get())
    rotation.refresh_from_db()
    # The key changed and nothing was lost, but nothing was re-issued either.
    assert rotation.finished_at is None and rotation.total is None
    assert [reissues(invitation) for invitation in invitations] == [0] * 5

    # Not before the sweep's delay: a re-issue that just started is not taken for a lost one.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_queued_emails.delay()
    rotation.refresh_from_db()
    assert rotation.finished_at is None

    age(rotation, settings.INVITATION_SWEEP_AFTER_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_queued_emails.delay()
    rotation.refresh_from_db()
    assert rotation.finished_at is not None and (rotation.total, rotation.done) == (5, 5)
    assert [reissues(invitation) for invitation in invitations] == [1] * 5
    assert sorted(message.to[0] for message in mailoutbox) == sorted(i.user.email for i in invitations)

    # Finished: the next sweeps leave it alone.
    age(rotation, settings.INVITATION_SWEEP_AFTER_SECONDS + 1)
    UrlRotation.objects.filter(pk=rotation.pk).update(finished_at=timezone.now())
    assert sending.resume_stalled_rotations() == []
    assert [reissues(invitation) for invitation in invitations] == [1] * 5


def test_only_a_rotation_without_progress_is_queued_again_and_once_per_delay(settings):
    OrganisationFactory()
    quiet = UrlRotation.objects.create(version=2)
    busy = UrlRotation.objects.create(version=3)
    age(quiet, settings.INVITATION_SWEEP_AFTER_SECONDS + 1)
    age(busy, settings.INVITATION_SWEEP_AFTER_SECONDS + 1)
    UrlRotation.objects.filter(pk=busy.pk).update(progress_at=timezone.now() - timedelta(seconds=5))
    with mock.patch.object(tasks.reissue_invitations, "delay") as delay:
        assert sending.resume_stalled_rotations() == [quiet.pk]
        # Marked as it was queued again: the next sweep, a minute later, waits for it to progress.
        assert sending.resume_stalled_rotations() == []
    delay.assert_called_once_with(quiet.pk)


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_rotation_take_turns_and_email_each_invitation_once(postgres, monkeypatch):
    """A redelivered run and a resumed one at the same time (PostgreSQL's row locks)."""
    OrganisationFactory()
    invitations = [InvitationFactory() for _ in range(12)]
    rotation = UrlRotation.objects.create(version=2)
    monkeypatch.setattr(sending, "FANOUT_CHUNK", 2)  # many batches, so that the runs interleave
    monkeypatch.setattr(sending, "queue_emails", lambda ids: None)  # the rows are what matters here
    start, errors = threading.Barrier(2), []

    def run():
        try:
            start.wait()
            sending.reissue_for_rotation(UrlRotation.objects.get(pk=rotation.pk))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [reissues(invitation) for invitation in invitations] == [1] * 12
    rotation.refresh_from_db()
    assert (rotation.total, rotation.done) == (12, 12) and rotation.finished_at is not None
    assert connection.vendor == "postgresql"
