"""Inviting thousands of users from one console action: bulk writes, one fan-out message per 500
emails, each chunk sent over one SMTP connection, every email still sent at most once."""
from unittest import mock

import factory
import pytest
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from invitations import sending
from invitations.models import AuditEvent, Invitation, InvitationEmail
from tests.factories import UserFactory, UserGroupFactory

pytestmark = pytest.mark.django_db


def make_users(count, prefix="bulk"):
    return UserFactory.create_batch(count, email=factory.Sequence(lambda n: f"{prefix}{n}@example.com"))


def invite_queries(users, admin_user):
    with CaptureQueriesContext(connection) as queries:
        sending.invite(users, actor=admin_user)
    return len(queries)


def test_invite_writes_in_bulk_whatever_the_number_of_users(organisation, admin_user):
    few, many = make_users(3, "few"), make_users(60, "many")

    assert invite_queries(few, admin_user) == invite_queries(many, admin_user)
    assert AuditEvent.objects.filter(action="invitation.sent").count() == 63


def test_reinviting_pending_users_resends_with_a_fixed_query_count(organisation, admin_user):
    few, many = make_users(3, "few"), make_users(40, "many")
    sending.invite(few + many)

    assert invite_queries(few, admin_user) == invite_queries(many, admin_user)
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 43


def test_bulk_invite_sends_each_user_one_email(organisation, mailoutbox, django_capture_on_commit_callbacks):
    users = make_users(sending.DELIVERY_BATCH + 7)

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
    # same few queries: the count is linear in the emails, with no per-batch or per-user extra.
    one = delivery_queries(make_users(1, "one"))
    per_email = delivery_queries(make_users(2, "two")) - one
    assert delivery_queries(make_users(30, "thirty")) == one + 29 * per_email


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


def test_send_invitations_action_on_all_selected_users_invites_them_in_bulk(console, organisation,
                                                                            django_capture_on_commit_callbacks):
    users = make_users(30)

    with django_capture_on_commit_callbacks(execute=False):
        response = console.post(reverse("admin:invitations_user_changelist") + "?q=bulk", {
            "action": "send_invitations", "select_across": "1", "index": "0", "_selected_action": [users[0].pk]})

    assert response.status_code == 302
    assert Invitation.objects.filter(user__in=users).count() == 30
    assert InvitationEmail.objects.filter(status=InvitationEmail.Status.QUEUED).count() == 30
