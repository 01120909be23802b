"""The SQL of the invitation action on many users at once (sending.invite_ids), written out.

A console action on every user of a search (10,000 and more) must not load a row or build a Python
object per user: it is three INSERT … SELECT statements inside one transaction (the invitations that
are missing, an audit event per invitation emailed, the emails to send), which the ORM has no method
for. They are spelled here with their parameters rather than assembled from the ORM's compiler, so that
what runs is what a reader sees and a Django upgrade cannot change it. They run on PostgreSQL and on
SQLite (3.35+, for RETURNING); tests/test_invite_sql.py runs them on both.

Users are selected by their ids, passed on PostgreSQL as one array parameter (`= ANY(%s)`: one
adaptation and one parse whatever the count) and elsewhere as an IN list. The users already invited
are left out with NOT IN, a hashed subplan, rather than NOT EXISTS: right after an import the tables'
statistics are stale and the anti-join was planned as a nested loop over every pending invitation.
"""
from django.db import connection

from accounts.models import AuditEvent, User

from .models import Invitation, InvitationEmail


SENT, RESENT = "invitation.sent", "invitation.resent"


def _ids(column, ids):
    """(SQL, params) of "column is one of ids"."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    if not ids:
        return "1 = 0", []
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _cast(placeholder, postgresql_type):
    """A parameter typed for PostgreSQL (an untyped literal in a SELECT list is text there); SQLite takes
    the value as it is."""
    return f"CAST({placeholder} AS {postgresql_type})" if connection.vendor == "postgresql" else placeholder


def _datetime(value):
    return connection.ops.adapt_datetimefield_value(value)


def _pending(alias, ids, now):
    """(SQL, params) of Invitation.objects.pending() for these users: not revoked, not accepted, not expired."""
    in_ids, params = _ids(f"{alias}.user_id", ids)
    return (f"{in_ids} AND {alias}.revoked_at IS NULL AND {alias}.accepted_at IS NULL "
            f"AND {alias}.expires_at > %s"), [*params, _datetime(now)]


def _emailed_before(alias):
    """An invitation emailed before: its next email is a resend."""
    return f"EXISTS (SELECT 1 FROM {InvitationEmail._meta.db_table} e WHERE e.invitation_id = {alias}.id)"


def insert_missing_invitations(ids, *, created_by_id, now, expires):
    """An invitation (queued) for each of these users who has none pending."""
    users, user_params = _ids("u.id", ids)
    pending, pending_params = _pending("i", ids, now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Invitation._meta.db_table} "
            "(user_id, status, failure_reason, created_by_id, created_at, expires_at) "
            f"SELECT u.id, %s, '', %s, %s, %s FROM {User._meta.db_table} u "
            f"WHERE {users} AND u.id NOT IN (SELECT i.user_id FROM {Invitation._meta.db_table} i WHERE {pending})",
            [Invitation.Status.QUEUED, created_by_id, _datetime(now), _datetime(expires),
             *user_params, *pending_params])


def audit_invitations_emailed(ids, *, actor_id, actor_label, ip, now):
    """One audit event per pending invitation of these users: invitation.sent, or invitation.resent when
    it was emailed before. Written before the new emails (insert_emails) so that "before" means before.
    Returns the ids of the invitations emailed before (resent), for insert_emails."""
    pending, params = _pending("i", ids, now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {AuditEvent._meta.db_table} "
            "(actor_id, actor_label, action, target_type, target_id, target_label, ip, detail, created_at, count) "
            f"SELECT %s, %s, CASE WHEN {_emailed_before('i')} THEN %s ELSE %s END, "
            f"%s, CAST(i.id AS TEXT), SUBSTR('Invitation for ' || u.email, 1, 254), {_cast('%s', 'inet')}, "
            f"{_cast('%s', 'jsonb')}, %s, 1 "
            f"FROM {Invitation._meta.db_table} i JOIN {User._meta.db_table} u ON u.id = i.user_id WHERE {pending} "
            "RETURNING target_id, action",
            [actor_id, actor_label, RESENT, SENT, Invitation._meta.label, ip, "{}", _datetime(now), *params])
        return [int(target_id) for target_id, action in cursor.fetchall() if action == RESENT]


def insert_emails(ids, *, resent, now):
    """A queued email for each pending invitation of these users: a resend for the invitations `resent`
    (audit_invitations_emailed's answer), else a first invitation. Returns (email id, invitation id,
    reason) of each.

    The statement does not look for earlier emails itself: a per-row EXISTS on the table it inserts into
    is planned as a sequential scan while the table's statistics say it is empty (a new installation, or
    statistics from before the first bulk invitation), and each of those scans then reads every row the
    statement has inserted so far, invisible to it but in the heap: 10,000 first invitations took 0.4 s
    instead of 0.04 s (EXPLAIN ANALYZE: 520,000 buffer accesses in the subplan)."""
    pending, params = _pending("i", ids, now)
    was_resent, resent_params = _ids("i.id", resent)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {InvitationEmail._meta.db_table} (invitation_id, status, attempts, error, reason, queued_at) "
            f"SELECT i.id, %s, 0, '', CASE WHEN {was_resent} THEN %s ELSE %s END, %s "
            f"FROM {Invitation._meta.db_table} i WHERE {pending} "
            "RETURNING id, invitation_id, reason",
            [InvitationEmail.Status.QUEUED, *resent_params, InvitationEmail.Reason.RESEND,
             InvitationEmail.Reason.INVITE, _datetime(now), *params])
        return cursor.fetchall()
