"""Inviting thousands of users from one console action: set-based writes (a fixed number of
statements, no user loaded), one fan-out message per 500 emails, each chunk sent over one SMTP
connection with one commit per email, every email still sent at most once."""
from datetime import timedelta
from unittest import mock

import factory
import pytest
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from invitations import sending, tasks
from invitations.models import Invitation, InvitationEmail
from tests.console_fixtures import messages_of
from tests.factories import UserFactory, UserGroupFactory

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"


def make_users(count, prefix="bulk"):
    return UserFactory.create_batch(count, email=factory.Sequence(lambda n: f"{prefix}{n}@example.com"))


def invite_queries(users, admin_user):
    with CaptureQueriesContext(connection) as queries:
        sending.invite(users, actor=admin_user)
    return len(queries)


def test_invite_writes_in_bulk_whatever_the_number_of_users(organisation, admin_user):
    few, many = make_users(3, "few"), make_users(60, "many")

    assert invite_queries(few, admin_user) == invite_queries(many, admin_user)
    events = AuditEvent.objects.filter(action="invitation.sent")
    assert events.count() == 63
    labels = {str(invitation): str(invitation.pk) for invitation in Invitation.objects.select_related("user")}
    assert {event.target_label: event.target_id for event in events} == labels
    assert {event.actor_id for event in events} == {admin_user.pk}
    assert set(InvitationEmail.objects.values_list("reason", flat=True)) == {InvitationEmail.Reason.INVITE}


def test_reinviting_pending_users_resends_with_a_fixed_query_count(organisation, admin_user):
    few, many = make_users(3, "few"), make_users(40, "many")
    sending.invite(few + many)

    Invitation.objects.update(expires_at=timezone.now() + timedelta(days=1))

    assert invite_queries(few, admin_user) == invite_queries(many, admin_user)
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 43
    assert Invitation.objects.count() == 43  # resent, not invited again
    assert InvitationEmail.objects.filter(reason=InvitationEmail.Reason.RESEND).count() == 43
    assert Invitation.objects.filter(expires_at__lt=timezone.now() + timedelta(days=10)).count() == 0


def test_bulk_invite_sends_each_user_one_email(organisation, mailoutbox, django_capture_on_commit_callbacks):
    users = make_users(8)

    with mock.patch.object(sending, "get_connection", wraps=sending.get_connection) as get_connection:
        with django_capture_on_commit_callbacks(execute=True):
            sending.invite(users)

    assert sorted(m.to[0] for m in mailoutbox) == sorted(u.email for u in users)
    assert get_connection.call_count == 1  # one fan-out chunk, one SMTP connection
    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.SENT}
    assert set(Invitation.objects.values_list("status", flat=True)) == {Invitation.Status.SENT}
    assert AuditEvent.objects.filter(action="invitation.email_delivered").count() == len(users)


def test_delivery_queries_per_email_are_fixed_whatever_the_batch(organisation, django_capture_on_commit_callbacks):
    def delivery_queries(users):
        sending.invite(users)
        ids = list(InvitationEmail.objects.filter(invitation__user__in=users).values_list("pk", flat=True))
        with CaptureQueriesContext(connection) as queries:
            assert sending.deliver_many(ids) == []
        return len(queries)

    # Emails are claimed one at a time (a killed worker strands one, never a batch), so each costs the
    # same few queries: the count is linear in the emails, with no per-batch or per-user extra. One
    # transaction per email records the previous one as sent (email, invitation, audit) and claims it.
    one = delivery_queries(make_users(1, "one"))
    per_email = delivery_queries(make_users(2, "two")) - one
    assert delivery_queries(make_users(30, "thirty")) == one + 29 * per_email
    assert per_email <= 6  # savepoint, 3 writes recording the previous email, the claim, release


def test_group_settings_reach_each_users_email_in_a_batch(organisation, mailoutbox,
                                                          django_capture_on_commit_callbacks):
    pin_group = UserGroupFactory(registration_mode="pin")
    with_pin, without = make_users(2, "pin"), make_users(2, "plain")
    pin_group.members.add(*with_pin)

    with django_capture_on_commit_callbacks(execute=True):
        sending.invite(with_pin + without)

    bodies = {m.to[0]: m.body for m in mailoutbox}
    assert all("PIN" in bodies[u.email] for u in with_pin)
    assert not any("PIN" in bodies[u.email] for u in without)


def test_email_failing_in_a_batch_is_retried_alone_and_the_others_are_sent_once(
        organisation, mailoutbox, django_capture_on_commit_callbacks):
    users = make_users(5)
    unlucky = users[2].email
    real_send = EmailMultiAlternatives.send

    def send(message, fail_silently=False):
        if message.to == [unlucky]:
            raise OSError("mailbox unavailable")
        return real_send(message, fail_silently)

    with mock.patch.object(EmailMultiAlternatives, "send", autospec=True, side_effect=send) as patched:
        with django_capture_on_commit_callbacks(execute=True):
            sending.invite(users)

    assert sorted(m.to[0] for m in mailoutbox) == sorted(u.email for u in users if u.email != unlucky)
    # Once in its batch, once on its own (in-process, the one-email task's failure is final at once).
    assert [call.args[0].to for call in patched.call_args_list].count([unlucky]) == 2
    failed = InvitationEmail.objects.get(invitation__user__email=unlucky)
    assert failed.status == InvitationEmail.Status.FAILED and "mailbox unavailable" in failed.error
    assert InvitationEmail.objects.filter(status=InvitationEmail.Status.SENT).count() == 4


def test_unreachable_smtp_server_leaves_each_email_to_its_own_retry(organisation, settings,
                                                                     django_capture_on_commit_callbacks):
    from tests.services import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    users = make_users(3)

    with django_capture_on_commit_callbacks(execute=True):
        sending.invite(users)

    assert set(Invitation.objects.values_list("status", flat=True)) == {Invitation.Status.FAILED}
    assert AuditEvent.objects.filter(action="invitation.email_failed").count() == 3


def send_to_all(console, prefix, django_capture_on_commit_callbacks):
    """The console's "Select all" + "Send invitation" on the users whose address starts with prefix."""
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        response = console.post(USERS + f"?q={prefix}", {
            "action": "send_invitations", "select_across": "1", "index": "0", "_selected_action": ["0"],
            "post": "yes"})
    assert response.status_code == 302
    return len(queries)


def test_send_invitations_action_on_all_users_costs_the_same_queries_for_3_or_40_users(
        console, organisation, django_capture_on_commit_callbacks):
    few, many = make_users(3, "few"), make_users(40, "many")

    with mock.patch.object(tasks.fan_out_emails, "delay", autospec=True) as fan_out:
        assert send_to_all(console, "few", django_capture_on_commit_callbacks) == send_to_all(
            console, "many", django_capture_on_commit_callbacks)

    for users in (few, many):
        assert InvitationEmail.objects.filter(invitation__user__in=users,
                                              status=InvitationEmail.Status.QUEUED).count() == len(users)
    assert [len(call.args[0]) for call in fan_out.call_args_list] == [3, 40]  # one chunk each


def test_send_invitations_action_queues_one_task_per_chunk_and_says_how_many_and_who_was_skipped(
        console, organisation, django_capture_on_commit_callbacks, monkeypatch):
    users = make_users(25)
    for user in users[:2]:
        user.is_active = False
        user.save()
    monkeypatch.setattr(sending, "FANOUT_CHUNK", 10)

    with mock.patch.object(tasks.fan_out_emails, "delay", autospec=True) as fan_out:
        send_to_all(console, "bulk", django_capture_on_commit_callbacks)
    response = console.get(USERS)

    assert [len(call.args[0]) for call in fan_out.call_args_list] == [10, 10, 3]
    assert sorted(pk for call in fan_out.call_args_list for pk in call.args[0]) == sorted(
        InvitationEmail.objects.values_list("pk", flat=True))
    assert set(Invitation.objects.values_list("user", flat=True)) == {user.pk for user in users[2:]}
    assert messages_of(response) == ["Invitations queued for 23 users.", "2 inactive users were not invited."]


def statement_parameters(users, admin_user):
    """The largest number of parameters any statement of an invite() took."""
    counts = []

    def count(execute, sql, params, many, context):
        counts.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        sending.invite(users, actor=admin_user)
    return max(counts)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="an array parameter is PostgreSQL's (SQLite gets the ids "
                                                              "as one placeholder each)")
def test_the_ids_travel_as_one_parameter_whatever_the_number_of_users(organisation, admin_user):
    """One array parameter (mdmportal.lookups.AnyOf), not one placeholder per user: a 10,000-user
    action no longer makes statements of 10,000 parameters for psycopg to adapt and PostgreSQL to
    parse, once per statement."""
    few, many = make_users(3, "few"), make_users(60, "many")

    assert statement_parameters(few, admin_user) == statement_parameters(many, admin_user)
    assert Invitation.objects.count() == 63


def test_users_already_invited_are_resent_to_and_the_others_invited_in_one_call(organisation, admin_user):
    invited_before, new = make_users(4, "before"), make_users(5, "new")
    sending.invite(invited_before)

    invitation_ids = sending.invite(invited_before + new, actor=admin_user)

    assert len(invitation_ids) == 9 and Invitation.objects.count() == 9
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 4
    assert AuditEvent.objects.filter(action="invitation.sent", actor=admin_user).count() == 5
    resends = InvitationEmail.objects.filter(reason=InvitationEmail.Reason.RESEND)
    assert sorted(resends.values_list("invitation__user__email", flat=True)) == sorted(u.email for u in invited_before)
    firsts = InvitationEmail.objects.filter(reason=InvitationEmail.Reason.INVITE, invitation__user__in=new)
    assert firsts.count() == 5


def test_inviting_nobody_writes_nothing(organisation, admin_user):
    assert sending.invite_ids([], actor=admin_user) == []
    assert not Invitation.objects.exists() and not AuditEvent.objects.filter(action__startswith="invitation.").exists()
