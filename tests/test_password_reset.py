"""Resetting a forgotten password by email, over HTTP: the end user's request (no account enumeration,
limited per address and per email), the email in the user's language, the link (single use), and the
administrator's "Send password reset" from the user's page, with the page's summary block."""
import re

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AccountLockout, AuditEvent
from mdmportal.log_redaction import redact
from tests.factories import PASSWORD, InvitationFactory, UserFactory, UserGroupFactory
from tests.factories_enrollment import DeviceFactory, RegistrationPinFactory

RESET = reverse("invitations:password_reset")
NEW_PASSWORD = "Lantern-Orchard-1987"
LINK = re.compile(re.escape(settings.PORTAL_URL) + r"(/password/reset/[\w-]+/[\w-]+)")


def ask(client, email, **extra):
    return client.post(RESET, {"email": email}, **extra)


def link_in(message):
    return LINK.search(message.body).group(1)


def test_the_sign_in_page_links_to_the_reset(client, organisation):
    assert f'href="{RESET}"' in client.get(reverse("invitations:login")).content.decode()


def test_same_answer_with_or_without_an_account_and_an_email_only_for_the_account(client, organisation):
    UserFactory(email="dana@example.com")

    known = ask(client, "Dana@Example.com")
    unknown = ask(client, "nobody@example.com")

    assert known.status_code == unknown.status_code == 302
    assert known.url == unknown.url == reverse("invitations:password_reset_sent")
    sent = client.get(known.url).content.decode()
    assert "If this address belongs to an account" in sent
    assert [m.to for m in mail.outbox] == [["dana@example.com"]]


def test_the_request_does_the_same_queries_whether_or_not_the_account_exists(organisation, settings):
    from mdmportal.celery import app

    UserFactory(email="dana@example.com")
    app.conf.task_always_eager = False  # the task is queued, not run: what the request itself does
    try:
        counts = []
        for email in ("dana@example.com", "nobody@example.com"):
            with CaptureQueriesContext(connection) as queries:
                from unittest import mock

                from invitations import tasks
                with mock.patch.object(tasks.send_password_reset, "delay") as delay:
                    assert ask(Client(), email).status_code == 302
                delay.assert_called_once()
            counts.append([q["sql"].split(" WHERE ")[0] for q in queries])
    finally:
        app.conf.task_always_eager = True
    assert counts[0] == counts[1]


def test_the_link_sets_a_new_password_once_ends_the_lockout_and_is_audited(client, organisation):
    user = UserFactory(email="dana@example.com")
    AccountLockout.objects.create(account="dana@example.com", lockouts=2)
    ask(client, "dana@example.com", REMOTE_ADDR="192.0.2.30")
    link = link_in(mail.outbox[0])

    page = client.get(link, follow=True)
    assert "Choose a new password" in page.content.decode()
    set_password_url = page.redirect_chain[-1][0]
    assert "set-password" in set_password_url
    done = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302 and done.url == reverse("invitations:password_reset_done")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not AccountLockout.objects.filter(account="dana@example.com").exists()
    assert AuditEvent.objects.filter(action="password.reset_requested", target_id=str(user.pk),
                                     ip="192.0.2.30").exists()
    assert AuditEvent.objects.filter(action="password.reset", target_id=str(user.pk)).exists()
    # Signed in with the new password; the link is spent.
    assert Client().post(reverse("invitations:login"), {"identity": "dana@example.com",
                                                        "password": NEW_PASSWORD}).status_code == 302
    again = Client().get(link, follow=True).content.decode()
    assert "This link no longer works" in again and "Choose a new password" not in again


def test_the_email_is_in_the_users_language(client, organisation):
    UserFactory(email="eve@example.com", display_name="Ève", french=True)

    ask(client, "eve@example.com")

    message, = mail.outbox
    assert message.subject == "Contoso : réinitialisez votre mot de passe"
    assert "Bonjour Ève," in message.body
    html, _ = message.alternatives[0]
    assert '<html lang="fr">' in html and link_in(message) in html


def test_requests_are_limited_per_email_silently_and_per_address_visibly(organisation, settings):
    settings.PASSWORD_RESET_PER_EMAIL = 2
    settings.PASSWORD_RESET_PER_ADDRESS = 4
    UserFactory(email="dana@example.com")

    answers = [ask(Client(REMOTE_ADDR=f"192.0.2.{n}"), "dana@example.com").status_code for n in range(3)]
    assert answers == [302, 302, 302]
    assert len(mail.outbox) == 2  # the third was not sent, and the page said the same

    same_address = Client(REMOTE_ADDR="198.51.100.1")
    answers = [ask(same_address, f"user{n}@example.com").status_code for n in range(5)]
    assert answers == [302, 302, 302, 302, 429]
    assert "Too many requests from your network" in ask(same_address, "x@example.com").content.decode()


def test_the_reset_link_is_kept_out_of_the_logs():
    assert redact("Forbidden: /password/reset/MQ/abc-123") == "Forbidden: /password/reset/[redacted]"
    assert redact("GET /password/reset-sent") == "GET /password/reset-sent"


# The administrator's side.

def test_administrator_sends_a_reset_from_the_users_page(console, organisation):
    user = UserFactory(email="dana@example.com")
    page = reverse("admin:accounts_user_change", args=[user.pk])
    reset = reverse("admin:accounts_user_password_reset", args=[user.pk])

    assert f'href="{reset}"' in console.get(page).content.decode()
    assert "Send dana@example.com an email" in console.get(reset).content.decode()
    assert mail.outbox == []
    response = console.post(reset, REMOTE_ADDR="192.0.2.40")

    assert response.status_code == 302 and response.url == page
    message, = mail.outbox
    assert message.to == ["dana@example.com"] and "An administrator of Contoso sent you this link" in message.body
    event = AuditEvent.objects.get(action="password.reset_sent")
    assert (event.target_id, event.ip, event.actor_label) == (str(user.pk), "192.0.2.40", "root@example.com")
    link = link_in(message)
    assert "Choose a new password" in Client().get(link, follow=True).content.decode()


def test_helpdesk_cannot_send_a_reset(client, helpdesk, alice, organisation):
    client.force_login(helpdesk)
    reset = reverse("admin:accounts_user_password_reset", args=[alice.pk])

    assert reset not in client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert client.post(reset).status_code == 403
    assert mail.outbox == []


def test_users_page_summarises_invitations_devices_pin_and_sign_in_in_bounded_queries(console, organisation):
    from accounts.models import RegistrationMode

    def page_queries(user):
        with CaptureQueriesContext(connection) as queries:
            response = console.get(reverse("admin:accounts_user_change", args=[user.pk]))
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    group = UserGroupFactory(name="Kiosks", registration_mode=RegistrationMode.PIN)
    few = UserFactory(email="few@example.com")
    group.members.add(few)
    InvitationFactory(user=few, failure_reason="SMTPRecipientsRefused: mailbox unavailable", status="failed")
    DeviceFactory(user=few, name="PC-FEW")
    RegistrationPinFactory(user=few)
    many = UserFactory(email="many@example.com")
    group.members.add(many)
    for _ in range(8):
        InvitationFactory(user=many)
    for n in range(8):
        DeviceFactory(user=many)
    RegistrationPinFactory(user=many)

    page_queries(few)  # the process's first console page fills caches (content types) the others reuse
    html, few_queries = page_queries(few)
    summary = html.split('id="user-summary"')[1].split("</table>")[0]
    assert "Registration PIN only" in summary and "Kiosks" in summary
    assert "a usable PIN, until" in summary
    assert "On-premise" in summary
    assert "SMTPRecipientsRefused" in summary
    assert "1 device enrolled of 5 allowed" in summary and "PC-FEW" in summary
    assert reverse("admin:enrollment_user_troubleshooting", args=[few.pk]) in summary
    _, many_queries = page_queries(many)
    assert few_queries == many_queries


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_reset_email_goes_through_the_worker_and_smtp_like_invitations(live_tasks, smtp_server, organisation):
    """The real path: the request queues the task on Redis, the Celery worker looks the account up and
    sends through the SMTP server; the link in the received email sets the password."""
    smtp_server.clear()
    user = UserFactory(email="frank@example.com")
    client = Client()

    assert ask(client, "frank@example.com").status_code == 302
    assert ask(Client(), "ghost@example.com").status_code == 302

    received = smtp_server.wait_for(1)
    assert [m["To"] for m in received] == ["frank@example.com"]
    body = received[0].get_body(preferencelist=("plain",)).get_content()
    link = LINK.search(body).group(1)
    form = client.get(link, follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert len(smtp_server.wait_for(2, timeout=2)) == 1  # nothing for the address without an account


def test_reset_pages_follow_the_browsers_language(client, organisation):
    french = {"HTTP_ACCEPT_LANGUAGE": "fr"}

    page = client.get(RESET, **french).content.decode()
    assert "Réinitialisez votre mot de passe" in page and "M’envoyer un lien" in page
    sent = client.get(reverse("invitations:password_reset_sent"), **french).content.decode()
    assert "Consultez vos e-mails" in sent
    spent = client.get(reverse("invitations:password_reset_confirm", args=["MQ", "x-y"]), follow=True,
                       **french).content.decode()
    assert "Ce lien ne fonctionne plus" in spent


def test_a_replaced_invitation_link_reads_in_the_invitees_language(client, organisation):
    from invitations.models import InvitationEmail
    from tests.test_portal_invitation import link_for

    invitation = InvitationFactory(user=UserFactory(french=True, no_password=True))
    old = link_for(invitation)
    link_for(invitation)

    page = client.get(old).content.decode()
    assert "Ce lien d’invitation a été remplacé" in page
    assert InvitationEmail.objects.filter(invitation=invitation).count() == 2
