from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from knox.models import AuthToken

from accounts.models import AuditEvent
from tests.api_helpers import client_with_token, make_token
from tests.factories import AdminFactory, UserFactory



def test_create_api_token_prints_a_token_that_authenticates_the_admin(full_admin):
    key = make_token(full_admin)

    assert AuthToken.objects.get(user=full_admin).expiry is None  # API_TOKEN_TTL_DAYS unset: no expiry
    assert client_with_token(key).get("/api/v1/users/").status_code == 200


def test_create_api_token_cannot_show_an_existing_token_again(full_admin):
    """Only its hash is stored: without --rotate, a second call refuses and the first token still works."""
    first = make_token(full_admin)

    with pytest.raises(CommandError, match="already has an API token.*--rotate"):
        make_token(full_admin)
    assert AuthToken.objects.filter(user=full_admin).count() == 1
    assert AuditEvent.objects.filter(action="api_token.created").count() == 1
    assert client_with_token(first).get("/api/v1/users/").status_code == 200


def test_create_api_token_finds_the_admin_whatever_the_email_case(full_admin):
    out = StringIO()
    call_command("create_api_token", "  FULL@Example.COM ", stdout=out)

    assert client_with_token(out.getvalue().strip()).get("/api/v1/users/").status_code == 200


def test_create_api_token_rotate_replaces_the_token_and_the_old_one_stops_working(full_admin):
    old = make_token(full_admin)

    new = make_token(full_admin, rotate=True)

    assert new != old
    assert client_with_token(old).get("/api/v1/users/").status_code == 401
    assert client_with_token(new).get("/api/v1/users/").status_code == 200
    assert AuthToken.objects.filter(user=full_admin).count() == 1
    assert AuditEvent.objects.filter(action="api_token.rotated", target_id=str(full_admin.pk)).exists()


def test_create_api_token_audits_the_creation(full_admin):
    make_token(full_admin)

    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.target_id, event.actor_label, event.detail) == (str(full_admin.pk), "system",
                                                                  {"via": "create_api_token"})


def test_create_api_token_refuses_an_unknown_email(db):
    with pytest.raises(CommandError, match="No user with email nobody@example.com"):
        call_command("create_api_token", "nobody@example.com", stdout=StringIO())


def test_create_api_token_refuses_a_user_without_console_access(db):
    user = UserFactory(email="enduser@example.com")

    with pytest.raises(CommandError, match="not an active administrator"):
        call_command("create_api_token", user.email, stdout=StringIO())
    assert not AuthToken.objects.exists()


def test_create_api_token_refuses_a_deactivated_admin(db):
    admin = AdminFactory(email="gone@example.com", is_active=False)

    with pytest.raises(CommandError, match="not an active administrator"):
        call_command("create_api_token", admin.email, stdout=StringIO())


def test_token_of_a_deactivated_admin_no_longer_authenticates(full_admin):
    key = make_token(full_admin)
    full_admin.is_active = False
    full_admin.save(update_fields=["is_active"])

    assert client_with_token(key).get("/api/v1/users/").status_code == 401


def test_an_expired_token_no_longer_authenticates(full_admin, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(days=1)}  # API_TOKEN_TTL_DAYS=1
    key = make_token(full_admin)
    token = AuthToken.objects.get(user=full_admin)
    assert token.expiry > timezone.now() + timedelta(hours=23)
    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    assert client_with_token(key).get("/api/v1/users/").status_code == 401
