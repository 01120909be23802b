"""`manage.py bootstrap_admin`: the first administrator (./serve runs it), and the way back when its
password is lost (--reset-password): a new generated password, printed once, audited, that signs in
to the console at once."""
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import AuditEvent, User
from tests.factories import PASSWORD, AdminFactory, UserFactory

pytestmark = pytest.mark.django_db


def bootstrap_admin(*args):
    out = StringIO()
    call_command("bootstrap_admin", *args, stdout=out)
    return out.getvalue()


def printed_password(output):
    found = re.findall(r"password: (\S+)", output)
    assert len(found) == 1, output
    return found[0]


def signs_in(client, email, password, address="192.0.2.10"):
    response = client.post(reverse("admin:login"), {"username": email, "password": password}, REMOTE_ADDR=address)
    client.logout()
    return response.status_code == 302


def test_the_first_administrator_is_created_once_with_a_printed_password(client):
    output = bootstrap_admin("--email", "ops@example.com")

    admin = User.objects.get(email="ops@example.com")
    assert admin.is_superuser and admin.is_active
    assert signs_in(client, admin.email, printed_password(output))
    assert AuditEvent.objects.filter(action="admin.bootstrapped", target_id=str(admin.pk)).count() == 1

    again = bootstrap_admin("--email", "other@example.com")
    assert "nothing to do" in again and "--reset-password" in again
    assert "password:" not in again
    assert not User.objects.filter(email="other@example.com").exists()


def test_reset_password_gives_the_administrator_a_new_password_printed_once_and_audited(client):
    admin = AdminFactory(email="ops@example.com")

    output = bootstrap_admin("--reset-password", "--email", "OPS@example.com")

    password = printed_password(output)
    assert password != PASSWORD and len(password) >= 16
    assert signs_in(client, admin.email, password)
    assert not signs_in(client, admin.email, PASSWORD, address="192.0.2.11")
    event = AuditEvent.objects.get(action="admin.password_reset")
    assert event.target_id == str(admin.pk) and event.actor is None
    assert password not in str(event.detail)


def test_reset_password_ends_the_accounts_lockout(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    admin = AdminFactory(email="ops@example.com")
    for i in range(3):
        signs_in(client, admin.email, "forgotten", address=f"10.0.0.{i}")

    password = printed_password(bootstrap_admin("--reset-password", "--email", admin.email))

    assert signs_in(client, admin.email, password, address="10.0.0.99")


def test_reset_password_without_email_picks_the_only_administrator(client):
    admin = AdminFactory(email="ops@example.com")
    UserFactory(email="alice@example.com")

    password = printed_password(bootstrap_admin("--reset-password"))

    assert signs_in(client, admin.email, password)


def test_reset_password_without_email_among_several_administrators_names_them_and_changes_nothing():
    AdminFactory(email="ops@example.com")
    AdminFactory(email="ops2@example.com")

    with pytest.raises(CommandError, match="--email") as raised:
        bootstrap_admin("--reset-password")

    assert "ops@example.com" in str(raised.value) and "ops2@example.com" in str(raised.value)
    assert all(user.check_password(PASSWORD) for user in User.objects.all())
    assert not AuditEvent.objects.filter(action="admin.password_reset").exists()


@pytest.mark.parametrize("who", ["an ordinary user", "a deactivated administrator", "nobody"])
def test_reset_password_refuses_anyone_but_an_active_administrator(who):
    if who == "an ordinary user":
        UserFactory(email="someone@example.com")
    elif who == "a deactivated administrator":
        AdminFactory(email="someone@example.com", is_active=False)

    with pytest.raises(CommandError, match="someone@example.com"):
        bootstrap_admin("--reset-password", "--email", "someone@example.com")

    assert all(user.check_password(PASSWORD) for user in User.objects.all())
    assert not AuditEvent.objects.filter(action="admin.password_reset").exists()


def test_in_development_the_lost_password_hint_is_a_command_that_runs(settings):
    """manage.py refuses to start without real secrets unless DEBUG is on, so the hint a development
    administrator reads carries DEBUG=true; in production it is the bare command."""
    AdminFactory()
    settings.DEBUG = True
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    assert "DEBUG=true .venv/bin/python manage.py bootstrap_admin --reset-password" in out.getvalue()
    settings.DEBUG = False
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    assert "DEBUG=true" not in out.getvalue() and "manage.py bootstrap_admin --reset-password" in out.getvalue()
