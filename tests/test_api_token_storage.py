"""API tokens are stored as a hash only (OWASP Authentication Cheat Sheet: store secrets as one-way
hashes): a copy of the database, a backup or a read-only SQL account gives no API access. The token
is shown once, when it is made."""
from io import StringIO

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
