"""Invitation emails through the real services: Celery worker on Redis, local SMTP server, PostgreSQL."""
import re
import time

import pytest
from django.db import transaction
from django.urls import reverse

from invitations import sending
from invitations.models import Invitation, InvitationEmail
from tests.factories import UserFactory
from tests.services import use_broker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LINK = re.compile(r"https?://[^\s\"<>]+/invite/[A-Za-z0-9_\-]+")


def text_part(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def test_invitation_sent_from_users_action_arrives_with_working_link(
        client, live_tasks, smtp_server, admin_user, organisation):
    smtp_server.clear()
    user = UserFactory(email="carol@example.com", no_password=True, french=True)
    client.force_login(admin_user)

    response = client.post(reverse("admin:accounts_user_changelist"),
                           {"action": "send_invitations", "_selected_action": [user.pk], "post": "yes"})

    assert response.status_code == 302
    messages = smtp_server.wait_for(1)
    assert [m["To"] for m in messages] == ["carol@example.com"]
    body = text_part(messages[0])
    assert organisation.enrollment_url in body
    link = LINK.search(body).group(0)
    follow = client.__class__().get(link[link.index("/invite/"):])
    assert follow.status_code == 200
    assert Invitation.objects.get(user=user).status == Invitation.Status.OPENED


def test_send_invitations_on_all_users_delivers_each_email_once_over_one_smtp_connection(
        client, live_tasks, smtp_server, admin_user, organisation):
    smtp_server.clear()
    users = [UserFactory(email=f"chunk{i:02d}@example.com") for i in range(12)]
    client.force_login(admin_user)

    response = client.post(reverse("admin:accounts_user_changelist") + "?q=chunk", {
        "action": "send_invitations", "select_across": "1", "index": "0", "_selected_action": [users[0].pk],
        "post": "yes"})

    assert response.status_code == 302
    smtp_server.wait_for(len(users))
    time.sleep(1)  # room for a duplicate
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(u.email for u in users)
    assert len(set(smtp_server.peers)) == 1  # the users fit one fan-out chunk: one SMTP connection
    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.SENT}
    assert set(Invitation.objects.values_list("status", flat=True)) == {Invitation.Status.SENT}


def test_invitations_requested_while_broker_is_down_are_each_delivered_exactly_once(
        live_tasks, redis_url, smtp_server, organisation):
    smtp_server.clear()
    users = [UserFactory(email=f"outage{i}@example.com") for i in range(3)]

    use_broker("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with transaction.atomic():
            sending.invite(users)
    finally:
        use_broker(redis_url)

    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.QUEUED}
    time.sleep(0.5)
    assert smtp_server.messages == []

    # Two sweeps in a row queue every email twice; each must still be sent once.
    sending.sweep()
    sending.sweep()
    smtp_server.wait_for(3)
    time.sleep(2)

    assert sorted(m["To"] for m in smtp_server.messages) == sorted(u.email for u in users)
    assert set(InvitationEmail.objects.values_list("status", flat=True)) == {InvitationEmail.Status.SENT}
