"""mdmportal/postgresql: Django's PostgreSQL backend, whose health check (CONN_HEALTH_CHECKS) asks the
server only when the connection's socket says something happened."""
from unittest import mock

import pytest
from django.db import connection, connections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def statements_sent(raw):
    """A spy on the psycopg connection's cursors: the health check runs SELECT 1 on one."""
    return mock.patch.object(raw, "cursor", wraps=raw.cursor)


def test_the_backend_is_ours_on_postgresql():
    assert connection.settings_dict["ENGINE"] == "mdmportal.postgresql"
    assert connection.vendor == "postgresql"


def test_a_healthy_idle_connection_is_usable_without_a_round_trip():
    connection.ensure_connection()
    raw = connection.connection
    with statements_sent(raw) as cursor:
        assert connection.is_usable()
    assert cursor.call_count == 0


def test_a_connection_the_server_ended_is_found_unusable_and_replaced():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            # Until PostgreSQL has seen the backend go (bounded by a count, not a clock).
            for _ in range(10_000):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    break
    finally:
        other.close()
    raw = connection.connection
    with statements_sent(raw) as spy:
        assert not connection.is_usable()
    assert spy.call_count == 1  # the socket was readable: Django's own check asked the server, and failed
    # What Django does before a request's first query: close it, then open a new one.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_inside_a_transaction_the_server_is_asked():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT 1")
        raw = connection.connection
        with statements_sent(raw) as spy:
            assert connection.is_usable()
        assert spy.call_count == 1
        cursor.execute("ROLLBACK")
