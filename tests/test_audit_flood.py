"""Refusals of unauthenticated clients are audited without letting a flood fill the database: the
refusals of one address for one reason within a minute make one row with a count, and one address
writes at most a few rows a minute, the rest counted on an overflow row."""
from datetime import datetime, timezone
from unittest import mock

import pytest
from django.db.models import Sum

from accounts.models import AuditEvent
from tests.enrollment_soap import CONTENT_TYPE, get_policies_body, service_url

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 9, 30, 5, tzinfo=timezone.utc)

FLOOD = 500


@pytest.fixture(autouse=True)
def within_a_minute():
    """Every request of a test in the same minute (Django's clock and axes' own)."""
    with mock.patch("django.utils.timezone.now", lambda: NOW), mock.patch("axes.handlers.proxy.now", lambda: NOW):
        yield


def refused_policies(client, organisation, address, username):
    response = client.post(service_url(organisation, "policy"), get_policies_body(username, "wrong"),
                           content_type=CONTENT_TYPE, secure=True, REMOTE_ADDR=address)
    assert response.status_code == 200 and b"s:Fault" in response.content
    return response


def refusals_from(address):
    return AuditEvent.objects.filter(ip=address, action__in=["enrollment.refused", "audit.refusals_overflow"])


def test_a_flood_of_refusals_from_one_address_writes_a_few_rows_with_the_total_count(client, organisation):
    for _ in range(FLOOD):
        refused_policies(client, organisation, "198.51.100.7", "nobody@example.com")
    rows = refusals_from("198.51.100.7")
    # Three reasons: unknown user, the failure that locked the address out, then the address locked out.
    assert rows.count() == 3, list(rows.values_list("action", "detail"))
    assert rows.aggregate(total=Sum("count"))["total"] == FLOOD


def test_one_address_cannot_write_more_than_its_cap_whatever_the_reasons(client, organisation, settings):
    settings.AUDIT_REFUSALS_PER_ADDRESS = 5
    for n in range(60):
        refused_policies(client, organisation, "198.51.100.8", f"nobody-{n}@example.com")
    rows = refusals_from("198.51.100.8")
    # The cap and one overflow row.
    assert rows.count() == 5 + 1, list(rows.values_list("action", "detail"))
    assert rows.aggregate(total=Sum("count"))["total"] == 60
    assert rows.filter(action="audit.refusals_overflow").exists()


def test_each_address_gets_its_own_rows(client, organisation):
    for n in range(3):
        for _ in range(10):
            refused_policies(client, organisation, f"203.0.113.{n + 1}", "nobody@example.com")
    for n in range(3):
        rows = refusals_from(f"203.0.113.{n + 1}")
        assert 1 <= rows.count() <= 3 and rows.aggregate(total=Sum("count"))["total"] == 10
