"""API tokens are stored as a hash only (OWASP Authentication Cheat Sheet: store secrets as one-way
hashes): a copy of the database, a backup or a read-only SQL account gives no API access. The token
is shown once, when it is made."""
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from tests.api_helpers import client_with_token


def every_stored_value():
    """Every value of every column of every table, as text."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            values += [str(value) for row in cursor.fetchall() for value in row]
    return values


def create_api_token(email):
    out = StringIO()
    call_command("create_api_token", email, stdout=out)
    return out.getvalue().strip()


def test_the_database_holds_no_copy_of_an_api_token(full_admin):
    token = create_api_token(full_admin.email)

    assert client_with_token(token).get("/api/v1/users/").status_code == 200
    assert [value for value in every_stored_value() if token in value] == []


# The console: full administrators make a token, shown once on the answer to the form

ADD = "/admin/knox/authtoken/add/"
LIST = "/admin/knox/authtoken/"


def test_console_shows_a_new_token_once_and_stores_only_its_hash(client, full_admin, enrollment_admin):
    from accounts.models import AuditEvent

    client.force_login(full_admin)
    response = client.post(ADD, {"user": enrollment_admin.pk})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = re.search(r'id="api-token">([0-9a-f]+)<', response.content.decode()).group(1)
    assert client_with_token(token).get("/api/v1/users/").status_code == 200
    assert [value for value in every_stored_value() if token in value] == []
    assert token not in client.get(LIST).content.decode()
    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.actor, event.target_id, event.detail) == (full_admin, str(enrollment_admin.pk), {"via": "console"})


def test_console_token_replaces_the_administrators_current_one(client, full_admin):
    old = create_api_token(full_admin.email)
    client.force_login(full_admin)

    client.post(ADD, {"user": full_admin.pk})

    assert client_with_token(old).get("/api/v1/users/").status_code == 401


def test_console_revokes_a_token(client, full_admin, enrollment_admin):
    from knox.models import AuthToken

    token = create_api_token(enrollment_admin.email)
    client.force_login(full_admin)

    client.post(LIST, {"action": "revoke", "_selected_action": [AuthToken.objects.get().pk]})

    assert client_with_token(token).get("/api/v1/users/").status_code == 401
    assert not AuthToken.objects.exists()


def test_console_offers_tokens_only_for_active_administrators(client, full_admin, alice):
    client.force_login(full_admin)

    response = client.post(ADD, {"user": alice.pk})

    assert response.status_code == 200 and 'id="api-token"' not in response.content.decode()
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize("role_fixture", ["enrollment_admin", "helpdesk"])
def test_only_full_administrators_see_api_tokens(client, request, role_fixture, alice):
    client.force_login(request.getfixturevalue(role_fixture))

    assert client.get(LIST).status_code == 403
    assert client.post(ADD, {"user": alice.pk}).status_code == 403

