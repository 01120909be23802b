"""invitations/invite_sql.py, the written-out INSERT … SELECT statements of the invitation action, read
back through the ORM. Runs on the suite's database: PostgreSQL in CI, SQLite bare."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from invitations import sending
from invitations.models import Invitation, InvitationEmail
from tests.factories import AdminFactory, InvitationEmailFactory, InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_each_user_gets_one_pending_invitation_one_email_and_one_audit_event():
    admin = AdminFactory()
    new = UserFactory(email="new@example.com")
    queued = InvitationFactory(user__email="queued@example.com")  # pending, never emailed
    emailed = InvitationFactory(user__email="emailed@example.com")
    InvitationEmailFactory(invitation=emailed)
    revoked = InvitationFactory(user__email="revoked@example.com", revoked=True)
    expired = InvitationFactory(user__email="expired@example.com", expired=True)
    bystander = InvitationFactory(user__email="bystander@example.com")
    users = [new, queued.user, emailed.user, revoked.user, expired.user]

    invitation_ids = sending.invite_ids([user.pk for user in users], actor=admin, ip="192.0.2.7")

    pending = {invitation.user_id: invitation for invitation in Invitation.objects.pending()}
    assert sorted(invitation_ids) == sorted(pending[user.pk].pk for user in users)
    assert pending[queued.user_id] == queued and pending[emailed.user_id] == emailed
    assert pending[new.pk].created_by == admin and pending[new.pk].status == Invitation.Status.QUEUED
    assert pending[revoked.user_id] != revoked and pending[expired.user_id] != expired
    reasons = {email.invitation.user_id: email.reason
               for email in InvitationEmail.objects.filter(status=InvitationEmail.Status.QUEUED)
               .exclude(invitation=emailed, reason=InvitationEmail.Reason.INVITE).select_related("invitation")}
    assert reasons == {new.pk: "invite", queued.user_id: "invite", emailed.user_id: "resend",
                       revoked.user_id: "invite", expired.user_id: "invite"}
    events = {event.target_label: event for event in AuditEvent.objects.filter(target_type="invitations.Invitation")}
    assert {label: event.action for label, event in events.items()} == {
        "Invitation for new@example.com": "invitation.sent", "Invitation for queued@example.com": "invitation.sent",
        "Invitation for emailed@example.com": "invitation.resent",
        "Invitation for revoked@example.com": "invitation.sent",
        "Invitation for expired@example.com": "invitation.sent"}
    event = events["Invitation for emailed@example.com"]
    assert (event.actor, event.actor_label, event.ip, event.detail, event.count) == (
        admin, str(admin), "192.0.2.7", {}, 1)
    assert event.target_id == str(emailed.pk) and event.created_at <= timezone.now()
    assert not Invitation.objects.filter(user=bystander.user).exclude(pk=bystander.pk).exists()
    assert bystander.emails.count() == 0


def test_a_resend_extends_the_pending_invitation_and_the_system_is_the_actor_without_one():
    invitation = InvitationFactory(expires_at=timezone.now() + timedelta(hours=1))
    InvitationEmailFactory(invitation=invitation)
    sending.invite_ids([invitation.user_id])
    invitation.refresh_from_db()
    assert invitation.expires_at > timezone.now() + timedelta(days=1)
    event = AuditEvent.objects.get(action="invitation.resent")
    assert (event.actor, event.actor_label, event.ip) == (None, "system", None)


def test_no_user_writes_nothing():
    assert sending.invite_ids([]) == []
    assert not Invitation.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize("count", [3, 60])
def test_the_statements_are_the_same_whatever_the_number_of_users(count, django_capture_on_commit_callbacks):
    ids = [UserFactory().pk for _ in range(count)]
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks():
        sending.invite_ids(ids)
    statements = [query["sql"] for query in queries.captured_queries]
    assert sum(sql.startswith("INSERT") for sql in statements) == 3
    assert Invitation.objects.count() == count == InvitationEmail.objects.count() == AuditEvent.objects.filter(
        action="invitation.sent").count()


@pytest.mark.parametrize("count", [100, 300])
def test_the_email_insert_reads_the_email_table_once_per_row_even_with_statistics_of_an_empty_table(
        count, postgres, django_capture_on_commit_callbacks):
    """The statistics of a new installation (or from before the first bulk invitation) say the email
    table is empty, so a per-row look-up in it is planned as a sequential scan. The statement that
    inserts the emails must not make one: each would read every row inserted before it (invisible, but
    in the heap), 10,000² / 2 rows for 10,000 users. Counted in heap blocks of the email table read by
    the action's transaction: one per email inserted (INSERT … SELECT pins the target page per row) and
    a few for the pages the table grows by."""
    ids = [user.pk for user in UserFactory.create_batch(count)]
    table = InvitationEmail._meta.db_table
    with connection.cursor() as cursor:
        # An empty heap (the rows of earlier tests, rolled back, are still in it), then its statistics.
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(f"ANALYZE {table}")

        def blocks_read():
            cursor.execute("SELECT pg_stat_get_xact_blocks_fetched(%s::regclass)", [table])
            return cursor.fetchone()[0]

        before = blocks_read()
        with django_capture_on_commit_callbacks():
            sending.invite_ids(ids)
        read = blocks_read() - before
    assert InvitationEmail.objects.count() == count
    assert read <= count + count // 20 + 5
