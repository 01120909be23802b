"""The Users and Audit log CSV exports (console and API): who may export, what is exported (the
current filtered list), that each export is audited, and that the audit export streams in chunks
(its queries do not grow with the rows). Cell neutralisation is in tests/test_csv_injection.py."""
import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from tests.api_helpers import client_with_token, make_token
from tests.console_fixtures import action
from tests.factories import AuditEventFactory, UserFactory

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
USER_EXPORT = "/admin/accounts/user/export/"
AUDIT = "/admin/accounts/auditevent/"
AUDIT_EXPORT = "/admin/accounts/auditevent/export/"
API_USER_EXPORT = "/api/v1/users/export/"
API_AUDIT = "/api/v1/audit-events/"
API_AUDIT_EXPORT = "/api/v1/audit-events/export/"


def rows_of(response):
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def emails(response):
    return sorted(row[0] for row in rows_of(response)[1:])


@pytest.fixture
def bare_staff(db):
    """Console access but no role: no permission at all."""
    return UserFactory(email="bare@example.com", is_staff=True)


# --- Users: who may export ---------------------------------------------------------------------------

def test_helpdesk_may_export_users_as_it_may_list_them(client, helpdesk, alice):
    client.force_login(helpdesk)

    assert "alice@example.com" in emails(client.get(USER_EXPORT))
    assert USER_EXPORT.encode() in client.get(USERS).content


def test_users_export_refuses_anonymous_and_users_without_console_access(client, alice):
    assert client.get(USER_EXPORT)["Location"].startswith("/admin/login/")
    client.force_login(alice)
    assert client.get(USER_EXPORT)["Location"].startswith("/admin/login/")
    assert not AuditEvent.objects.filter(action="users.exported").exists()


def test_users_export_refuses_staff_without_a_role(client, bare_staff, alice):
    client.force_login(bare_staff)

    assert client.get(USER_EXPORT).status_code == 403
    assert not AuditEvent.objects.filter(action="users.exported").exists()


def test_api_users_export_follows_the_list_permission(helpdesk_api, bare_staff, alice):
    assert "alice@example.com" in emails(helpdesk_api.get(API_USER_EXPORT))
    assert client_with_token(make_token(bare_staff)).get(API_USER_EXPORT).status_code == 403


def test_api_users_export_refuses_users_who_lost_console_access(alice):
    alice.is_staff = True
    alice.save()
    key = make_token(alice)
    alice.is_staff = False
    alice.save()

    assert client_with_token(key).get(API_USER_EXPORT).status_code == 403


# --- Users: what is exported, and the audit of it --------------------------------------------------------

def test_users_export_is_the_filtered_and_searched_list(console, alice, bob):
    UserFactory(email="carol@example.com", language="fr")

    assert emails(console.get(USER_EXPORT, {"language__exact": "fr"})) == ["carol@example.com"]
    assert emails(console.get(USER_EXPORT, {"q": "alice"})) == ["alice@example.com"]


def test_users_export_action_exports_the_selected_users(console, alice, bob):
    UserFactory(email="carol@example.com")

    response = console.post(USERS, action("export_csv", alice, bob))

    assert emails(response) == ["alice@example.com", "bob@example.com"]
    event = AuditEvent.objects.get(action="users.exported")
    assert event.detail["rows"] == 2


def test_users_export_is_audited_with_the_row_count_and_filter(console, alice, bob):
    rows_of(console.get(USER_EXPORT, {"q": "example.com", "is_staff__exact": "0"}, REMOTE_ADDR="203.0.113.5"))

    event = AuditEvent.objects.get(action="users.exported")
    assert (event.actor.email, event.ip) == ("root@example.com", "203.0.113.5")
    assert event.detail == {"rows": 2, "filter": {"q": "example.com", "is_staff__exact": "0"}, "via": "console"}


def test_api_users_export_filters_like_the_list_and_is_audited(full_api, alice, bob):
    assert emails(full_api.get(API_USER_EXPORT, {"search": "bob"})) == ["bob@example.com"]

    event = AuditEvent.objects.get(action="users.exported")
    assert event.detail == {"rows": 1, "filter": {"search": "bob"}, "via": "api"}


def test_users_export_queries_do_not_grow_with_the_users(console):
    def queries_for(count):
        UserFactory.create_batch(count)
        with CaptureQueriesContext(connection) as queries:
            rows = rows_of(console.get(USER_EXPORT))
        assert len(rows) > count
        return len(queries)

    assert queries_for(10) == queries_for(190)


# --- Audit log: who may export ---------------------------------------------------------------------

def test_helpdesk_may_export_the_audit_log(client, helpdesk):
    AuditEventFactory(action="user.added")
    client.force_login(helpdesk)

    rows = rows_of(client.get(AUDIT_EXPORT))

    assert rows[0] == ["time", "actor", "action", "object_type", "object_id", "object", "address", "count",
                       "last_time", "detail"]
    assert [row[2] for row in rows[1:]] == ["user.added"]
    assert AUDIT_EXPORT.encode() in client.get(AUDIT).content


def test_audit_export_refuses_anonymous_users_without_console_access_and_staff_without_a_role(
        client, alice, bare_staff):
    assert client.get(AUDIT_EXPORT)["Location"].startswith("/admin/login/")
    client.force_login(alice)
    assert client.get(AUDIT_EXPORT)["Location"].startswith("/admin/login/")
    client.force_login(bare_staff)
    assert client.get(AUDIT_EXPORT).status_code == 403
    api = client_with_token(make_token(bare_staff))
    assert api.get(API_AUDIT_EXPORT).status_code == 403
    assert api.get(API_AUDIT).status_code == 403
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_helpdesk_may_read_and_export_the_audit_log_through_the_api(helpdesk_api):
    AuditEventFactory(action="user.added", target_label="carol@example.com", ip="203.0.113.1")

    listed = helpdesk_api.get(API_AUDIT, {"action": "user.added"}).json()["results"]
    rows = rows_of(helpdesk_api.get(API_AUDIT_EXPORT, {"action": "user.added"}))

    assert [(event["action"], event["object"], event["address"]) for event in listed] == [
        ("user.added", "carol@example.com", "203.0.113.1")]
    assert [(row[2], row[5], row[6]) for row in rows[1:]] == [("user.added", "carol@example.com", "203.0.113.1")]


# --- Audit log: what is exported, the audit of it, and its cost -----------------------------------------

def test_audit_export_is_the_filtered_and_searched_list(console):
    AuditEventFactory(action="user.added", target_label="carol@example.com")
    AuditEventFactory(action="user.added", target_label="dave@example.com")
    AuditEventFactory(action="invitation.revoked", target_label="carol@example.com")

    by_action = rows_of(console.get(AUDIT_EXPORT, {"action": "user.added"}))
    searched = rows_of(console.get(AUDIT_EXPORT, {"q": "carol"}))

    assert sorted(row[5] for row in by_action[1:]) == ["carol@example.com", "dave@example.com"]
    assert sorted(row[2] for row in searched[1:]) == ["invitation.revoked", "user.added"]


def test_audit_export_is_audited_and_holds_the_events_before_it(client, helpdesk):
    AuditEventFactory.create_batch(3, action="user.added")
    client.force_login(helpdesk)

    rows = rows_of(client.get(AUDIT_EXPORT, REMOTE_ADDR="203.0.113.9"))

    event = AuditEvent.objects.get(action="audit.exported")
    assert (event.actor, event.ip) == (helpdesk, "203.0.113.9")
    assert event.detail == {"rows": 3, "filter": {}, "via": "console"}
    assert len(rows) == 1 + 3
    # The next export shows the first one.
    assert "audit.exported" in [row[2] for row in rows_of(client.get(AUDIT_EXPORT))[1:]]


def test_api_audit_export_is_audited(full_api):
    AuditEventFactory(action="user.added")

    rows_of(full_api.get(API_AUDIT_EXPORT, {"action": "user.added"}))

    event = AuditEvent.objects.get(action="audit.exported")
    assert event.detail == {"rows": 1, "filter": {"action": "user.added"}, "via": "api"}


@pytest.mark.parametrize("path", [AUDIT_EXPORT, API_AUDIT_EXPORT])
def test_audit_export_queries_do_not_grow_with_the_events(console, full_api, path):
    client = console if path == AUDIT_EXPORT else full_api

    def queries_for(count):
        AuditEventFactory.create_batch(count, action="user.added", detail={"n": 1})
        with CaptureQueriesContext(connection) as queries:
            rows = rows_of(client.get(path, {"action": "user.added"}))
        assert len(rows) == 1 + AuditEvent.objects.filter(action="user.added").count()
        return len(queries)

    assert queries_for(10) == queries_for(190)


def test_users_export_filters_by_role_and_sorts_like_the_list(console, helpdesk, enrollment_admin, alice):
    rows = rows_of(console.get(USER_EXPORT, {"role": "Helpdesk (read-only)"}))
    assert [row[0] for row in rows[1:]] == ["helpdesk@example.com"]

    by_email_desc = rows_of(console.get(USER_EXPORT, {"o": "-1"}))
    assert [row[0] for row in by_email_desc[1:]] == sorted((row[0] for row in by_email_desc[1:]), reverse=True)


@pytest.mark.parametrize("path", [USER_EXPORT, AUDIT_EXPORT])
def test_an_unknown_filter_sends_back_to_the_list_and_exports_nothing(console, path):
    response = console.get(path, {"no_such_field__exact": "1"})

    assert response.status_code == 302
    assert response["Location"].endswith("/?e=1")
    assert not AuditEvent.objects.filter(action__endswith=".exported").exists()


def test_api_audit_export_refuses_a_bad_filter_with_a_400(full_api):
    response = full_api.get(API_AUDIT_EXPORT, {"since": "yesterday"})

    assert response.status_code == 400
    assert "since" in response.json()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_api_audit_list_filters_by_time_and_searches(full_api):
    AuditEventFactory(action="user.added", target_label="carol@example.com")
    old = AuditEventFactory(action="user.added", target_label="dave@example.com")
    AuditEvent.objects.filter(pk=old.pk).update(created_at="2020-01-01T00:00:00Z")

    recent = full_api.get(API_AUDIT, {"since": "2021-01-01T00:00:00Z", "action": "user.added"}).json()["results"]
    searched = full_api.get(API_AUDIT, {"search": "dave"}).json()["results"]

    assert [event["object"] for event in recent] == ["carol@example.com"]
    assert [event["object"] for event in searched] == ["dave@example.com"]


def test_the_export_link_and_action_are_translated(console):
    page = console.get(USERS, HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert page.count("Exporter en CSV") == 2  # the link, and the action in the actions menu


def test_coalesced_refusals_keep_their_count_in_the_export_and_the_api(client, helpdesk):
    """Refusals of unauthenticated clients are one row a minute with a count: the file and the API
    must carry that count, or a flood would read as one refusal."""
    for _ in range(7):
        AuditEvent.record_refusal("enrollment.refused", ip="198.51.100.7", reason="wrong password")
    client.force_login(helpdesk)

    rows = rows_of(client.get(AUDIT_EXPORT, {"action": "enrollment.refused"}))
    listed = client_with_token(make_token(helpdesk)).get(API_AUDIT, {"action": "enrollment.refused"}).json()

    header = rows[0]
    assert [(row[header.index("address")], row[header.index("count")]) for row in rows[1:]] == [("198.51.100.7", "7")]
    assert rows[1][header.index("last_time")] != ""
    assert [(event["address"], event["count"]) for event in listed["results"]] == [("198.51.100.7", 7)]
