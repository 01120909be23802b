from datetime import UTC, datetime, timedelta
from unittest import mock

import lxml.html
from django.utils import timezone

from accounts.models import AuditEvent
from tests.factories import AuditEventFactory

AUDIT = "/admin/accounts/auditevent/"


def shown(response):
    return [event.action for event in response.context["cl"].result_list]


def test_audit_log_redirects_anonymous(client, db):
    assert client.get(AUDIT)["Location"].startswith("/admin/login/")


def test_audit_log_refuses_users_without_console_access(client, alice):
    client.force_login(alice)
    assert client.get(AUDIT)["Location"].startswith("/admin/login/")


def test_audit_log_is_readable_by_helpdesk(client, helpdesk):
    AuditEventFactory(action="user.added", actor_label="root@example.com", target_label="carol@example.com",
                      ip="203.0.113.1")
    client.force_login(helpdesk)
    response = client.get(AUDIT)
    assert response.status_code == 200
    html = response.content.decode()
    for text in ["user.added", "root@example.com", "carol@example.com", "203.0.113.1"]:
        assert text in html


def test_audit_log_cannot_be_added_changed_or_deleted_even_by_a_superuser(console):
    event = AuditEventFactory(action="user.added")
    assert console.get(f"{AUDIT}add/").status_code == 403
    assert console.post(f"{AUDIT}{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert console.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    console.post(AUDIT, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert event.action == "user.added"
    page = console.get(f"{AUDIT}{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_audit_log_filters_by_action_and_date(console):
    AuditEventFactory(action="user.added")
    AuditEventFactory(action="invitation.revoked")
    old = AuditEventFactory(action="invitation.revoked")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert shown(console.get(AUDIT, {"action": "invitation.revoked"})) == ["invitation.revoked"] * 2
    # The date filter's own link, as an administrator clicks it: its bounds carry their time zone.
    page = lxml.html.fromstring(console.get(AUDIT).content)
    (past_week,) = page.xpath('//a[normalize-space(text())="Past 7 days"]/@href')
    assert sorted(shown(console.get(AUDIT + past_week))) == ["invitation.revoked", "user.added"]


def test_audit_log_searches_actor_and_target(console):
    AuditEventFactory(action="user.added", actor_label="root@example.com", target_label="carol@example.com")
    AuditEventFactory(action="user.added", actor_label="full@example.com", target_label="dave@example.com")
    assert len(shown(console.get(AUDIT, {"q": "full@"}))) == 1
    assert len(shown(console.get(AUDIT, {"q": "carol"}))) == 1


def test_console_changes_are_audited_with_who_what_and_where(client, enrollment_admin, alice):
    client.force_login(enrollment_admin)
    client.post(f"/admin/accounts/user/{alice.pk}/change/",
                {"email": alice.email, "display_name": "Alice Martin", "language": "fr", "device_limit": "2",
                 "is_active": "on", "_save": "Save"}, REMOTE_ADDR="2001:db8::7")
    event = AuditEvent.objects.get(action="user.changed")
    assert (event.actor, event.actor_label, event.target_id, event.ip) == (
        enrollment_admin, "enroller@example.com", str(alice.pk), "2001:db8::7")
    assert event.created_at is not None


def test_coalesced_refusals_show_their_count(client, helpdesk, settings):
    with mock.patch("django.utils.timezone.now", lambda: datetime(2026, 3, 2, 9, 30, 5, tzinfo=UTC)):
        for _ in range(7):
            AuditEvent.record_refusal("enrollment.refused", ip="198.51.100.7", reason="unknown user",
                                      detail={"reason": "unknown user"})
        settings.AUDIT_REFUSALS_PER_ADDRESS = 1
        for n in range(4):
            AuditEvent.record_refusal("enrollment.refused", ip="198.51.100.7", reason=f"unknown user {n}")
        AuditEvent.record_refusal("enrollment.refused", ip="198.51.100.8", reason="unknown user")
    counts = dict(AuditEvent.objects.values_list("action", "count").filter(ip="198.51.100.7"))
    assert counts == {"enrollment.refused": 7, AuditEvent.REFUSALS_OVERFLOW: 4}
    assert AuditEvent.objects.get(ip="198.51.100.8").count == 1
    # The next minute starts again.
    AuditEvent.record_refusal("enrollment.refused", ip="198.51.100.7", reason="unknown user")
    assert AuditEvent.objects.filter(ip="198.51.100.7").count() == 3
    client.force_login(helpdesk)
    response = client.get(AUDIT)
    assert response.status_code == 200
    assert "column-count" in response.content.decode()
    assert 7 in [event.count for event in response.context["cl"].result_list]
