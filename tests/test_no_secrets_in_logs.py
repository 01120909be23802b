"""No invitation link, registration PIN or API token ever reaches a log, at any level: the journal is
read by more people than the invitees (OWASP Logging Cheat Sheet: never log session identifiers,
access tokens or passwords)."""
import logging
import re
from io import StringIO

from django.core import mail
from django.core.management import call_command
from django.test import Client

from invitations import sending
from tests.factories import PASSWORD, UserFactory

LINK = re.compile(r"https?://[^\s\"<>]+/invite/([\w-]+)")
PIN = re.compile(r"Your registration PIN: (\d+)")


def logged_messages(caplog):
    return [f"{record.name} {record.levelname} {record.getMessage()}" for record in caplog.records]


def assert_never_logged(caplog, secret, what):
    leaks = [message for message in logged_messages(caplog) if secret in message]
    assert not leaks, f"the {what} was logged: {leaks}"


def test_invitation_link_pin_and_api_token_are_never_logged(organisation, alice, bob, full_admin, caplog,
                                                             django_capture_on_commit_callbacks):
    organisation.registration_mode = "pin"
    organisation.save()
    caplog.set_level(logging.DEBUG)

    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([alice])
    body = mail.outbox[0].body
    link, token, pin = LINK.search(body).group(0), LINK.search(body).group(1), PIN.search(body).group(1)
    path = "/invite/" + token

    assert Client().get(path).status_code == 200  # the invitee opens it
    signed_in_as_someone_else = Client()
    signed_in_as_someone_else.force_login(bob)
    assert signed_in_as_someone_else.get(path).status_code == 403  # "Forbidden: <path>" by django.request
    assert Client(enforce_csrf_checks=True).post(path, {}).status_code == 403  # a CSRF refusal names the path
    out = StringIO()
    call_command("create_api_token", full_admin.email, stdout=out)
    api_token = out.getvalue().strip()

    assert caplog.records, "nothing was logged: this test would prove nothing"
    assert_never_logged(caplog, token, "invitation token")
    assert_never_logged(caplog, link, "invitation link")
    assert_never_logged(caplog, pin, "registration PIN")
    assert_never_logged(caplog, api_token, "API token")


def test_a_new_pin_on_the_enroll_page_is_never_logged(organisation, caplog):
    organisation.registration_mode = "pin"
    organisation.save()
    user = UserFactory(email="dana@example.com")
    client = Client()
    client.force_login(user)
    caplog.set_level(logging.DEBUG)

    page = client.get("/enroll").content.decode()

    pin = re.search(r'id="registration-pin">(\d+)<', page).group(1)
    assert_never_logged(caplog, pin, "registration PIN")


def test_request_lines_of_the_development_server_are_redacted(caplog):
    """runserver logs every request line (django.server): the invitation token is taken out."""
    caplog.set_level(logging.INFO)

    logging.getLogger("django.server").info('"%s" %s %s', "GET /invite/Zm9vYmFyLXNlY3JldA HTTP/1.1", 200, 512)

    assert caplog.records[-1].getMessage() == '"GET /invite/[redacted] HTTP/1.1" 200 512'


def test_without_email_url_outside_debug_an_invitation_fails_with_the_reason_and_prints_nothing(
        settings, alice, capfd, django_capture_on_commit_callbacks):
    """mdmportal/settings.py's choice when EMAIL_URL is unset and DEBUG off."""
    from invitations.models import Invitation

    settings.EMAIL_BACKEND = "mdmportal.mail.UnconfiguredEmailBackend"

    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([alice])

    invitation = Invitation.objects.get(user=alice)
    assert invitation.status == Invitation.Status.FAILED and "EMAIL_URL is not set" in invitation.failure_reason
    out, err = capfd.readouterr()
    assert "/invite/" not in out + err


def test_django_axes_never_logs_or_stores_the_invitation_token(organisation, alice, caplog):
    """django-axes records the path of every sign-in (AccessAttempt, AccessLog) and logs it: through
    an invitation link that path is the link. A wrong password, then the right one, through the link."""
    from axes.models import AccessAttempt, AccessLog

    from invitations.models import hash_token
    from tests.factories import InvitationEmailFactory, InvitationFactory

    token = "Zm9vYmFyLXNlY3JldC10b2tlbi1mb3ItYXhlcw"
    InvitationEmailFactory(invitation=InvitationFactory(user=alice), token_hash=hash_token(token), status="sent")
    path = "/invite/" + token
    caplog.set_level(logging.DEBUG)
    client = Client()

    assert client.get(path).status_code == 200
    assert "This password is not correct" in client.post(path, {"password": "not it"}).content.decode()
    stored_failures = list(AccessAttempt.objects.values_list("path_info", flat=True))
    assert client.post(path, {"password": PASSWORD}).status_code == 302

    assert caplog.records, "nothing was logged: this test would prove nothing"
    assert_never_logged(caplog, token, "invitation token")
    assert stored_failures == ["/invite/[redacted]"]
    assert list(AccessLog.objects.values_list("path_info", flat=True)) == ["/invite/[redacted]"]
