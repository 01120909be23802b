"""The invitation action writes three rows per user (an invitation, an email, an audit event) and each
row is also an entry in every index of its table whose predicate it meets: with 10,000 users that is
the bulk of the action's work in PostgreSQL. These tests count the index entries such rows make and
check that the look-ups the code makes still find their (partial) indexes. PostgreSQL only."""
import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from accounts.models import AuditEvent
from invitations import sending
from invitations.models import InvitationEmail
from tests.factories import AdminFactory, InvitationEmailFactory, UserFactory

pytestmark = pytest.mark.django_db


def index_entries(model, pk):
    """The names of the indexes of `model`'s table that hold the row `pk`: every index without a
    predicate, and each partial index whose predicate the row meets."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass", [table])
        indexes = cursor.fetchall()
        held = set()
        for name, predicate in indexes:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = %s AND ({predicate or 'true'}))", [pk])
            if cursor.fetchone()[0]:
                held.add(name)
    return held


def test_the_rows_of_the_invitation_action_are_in_the_indexes_their_look_ups_need_only(postgres):
    admin = AdminFactory()
    (invitation_id,) = sending.invite_ids([UserFactory().pk], actor=admin, ip="192.0.2.7")
    email = InvitationEmail.objects.get(invitation_id=invitation_id)
    event = AuditEvent.objects.get(action="invitation.sent")

    # Primary key, user, created_by.
    assert len(index_entries(email.invitation.__class__, invitation_id)) == 3
    # Primary key, invitation, (status, queued_at): no entry for the token it does not have yet.
    assert len(index_entries(InvitationEmail, email.pk)) == 3
    # Primary key, action, actor, created_at: none for the bucket of coalesced refusals, none twice.
    assert len(index_entries(AuditEvent, event.pk)) == 4
    system_event = AuditEvent.record(None, "invitation.email_delivered", email.invitation)
    assert len(index_entries(AuditEvent, system_event.pk)) == 3  # no actor, no actor index entry


def test_the_look_ups_of_the_code_use_the_partial_indexes(plan):
    # sending.find_email_by_token
    assert "invitationemail_token_hash_unique" in plan(InvitationEmail.objects.filter(token_hash="ab" * 32))
    # AuditEvent.record_refusal: an address's rows of the minute (a prefix), and a bucket's row.
    assert "auditevent_bucket_unique" in plan(AuditEvent.objects.filter(bucket__startswith="202603020930 192.0.2.1 "))
    assert "auditevent_bucket_unique" in plan(AuditEvent.objects.filter(bucket="202603020930 192.0.2.1 ab"))
    # An administrator's events, and those to set to NULL when administrators are deleted.
    assert "auditevent_actor_idx" in plan(AuditEvent.objects.filter(actor_id=1))
    assert "auditevent_actor_idx" in plan(AuditEvent.objects.filter(actor_id__in=[1, 2]))
    # The log's filter on an action, the dashboard's and troubleshooting's.
    assert "auditevent_action_idx" in plan(AuditEvent.objects.filter(action__in=["a.b", "c.d"]))


def test_a_token_and_a_bucket_are_still_unique_and_many_rows_have_none(postgres):
    InvitationEmailFactory.create_batch(2)  # no token yet
    taken = InvitationEmailFactory(token_hash="ab" * 32)
    with pytest.raises(IntegrityError), transaction.atomic():
        InvitationEmailFactory(token_hash=taken.token_hash)
    AuditEvent.objects.bulk_create([AuditEvent(action="x.y"), AuditEvent(action="x.y"),
                                    AuditEvent(action="x.y", bucket="202603020930 192.0.2.1 ab")])
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(action="x.z", bucket="202603020930 192.0.2.1 ab")
    assert AuditEvent.objects.filter(Q(bucket__isnull=True) | Q(bucket="202603020930 192.0.2.1 ab")).count() == 3
