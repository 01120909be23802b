"""The dashboard's figures, each a link to the list it counts showing exactly those rows; its charts,
drawn as SVG on the server; the enrollment URL; a number of queries that does not grow with the fleet."""
import re
from datetime import timedelta

import pytest
from django.utils import formats, timezone

from accounts.models import AuditEvent
from autopilot.models import AutopilotEnrollment
from enrollment import checkins
from tests.factories import AuditEventFactory, InvitationFactory
from tests.factories_autopilot import AppInstallFactory, AutopilotEnrollmentFactory
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

DASHBOARD = "/admin/"


def cards_of(response):
    return {card["id"]: card for card in response.context["cards"]}


def listed(client, url):
    """The primary keys the list page at `url` shows (all on one page here)."""
    response = client.get(url)
    assert response.status_code == 200, url
    changelist = response.context["cl"]
    assert changelist.result_count < changelist.list_per_page
    return {row.pk for row in changelist.result_list}


def ago(**delta):
    return timezone.now() - timedelta(**delta)


@pytest.fixture
def fleet(db):
    """Enrolled devices in every check-in bucket, and devices no longer enrolled."""
    now = timezone.now()
    midnight = checkins.midnight(now)
    devices = {
        "today": DeviceFactory(last_seen_at=now),
        "yesterday": DeviceFactory(last_seen_at=midnight - timedelta(hours=1), enrolled_at=ago(days=20)),
        "ten_days": DeviceFactory(last_seen_at=ago(days=10), enrolled_at=ago(days=40)),
        "forty_days": DeviceFactory(last_seen_at=ago(days=40), enrolled_at=ago(days=60)),
        "new_never": DeviceFactory(last_seen_at=None, enrolled_at=ago(days=1)),
        "old_never": DeviceFactory(last_seen_at=None, enrolled_at=ago(days=8)),
    }
    DeviceFactory(replaced=True, last_seen_at=ago(days=9))  # not enrolled: in no figure
    DeviceFactory(retired=True, last_seen_at=now)
    return devices


def test_device_figures_link_to_exactly_the_devices_they_count(console, organisation, fleet):
    cards = cards_of(console.get(DASHBOARD))
    expected = {
        "card-devices": set(fleet),
        "card-checked-in-today": {"today"},
        "card-silent": {"ten_days", "forty_days", "old_never"},
    }
    for card_id, names in expected.items():
        card = cards[card_id]
        assert card["figure"] == len(names), card_id
        assert listed(console, card["url"]) == {fleet[name].pk for name in names}, card_id


def test_the_device_list_filters_every_check_in_bucket(console, organisation, fleet):
    buckets = {"today": {"today"}, "week": {"yesterday"}, "month": {"ten_days"}, "older": {"forty_days"},
               "never": {"new_never", "old_never"}}
    for bucket, names in buckets.items():
        assert listed(console, f"/admin/enrollment/device/?status__exact=enrolled&checkin={bucket}") == {
            fleet[name].pk for name in names}, bucket
    html = console.get("/admin/enrollment/device/").content.decode()
    assert "Silent for 7 days or more" in html and "By last check-in" in html


def test_invitation_figures_link_to_exactly_the_invitations_they_count(console, organisation):
    pending = [InvitationFactory(), InvitationFactory(status="sent"), InvitationFactory(status="opened")]
    failed = InvitationFactory(status="failed")
    InvitationFactory(status="failed", expired=True)
    InvitationFactory(revoked=True)
    InvitationFactory(accepted=True)
    InvitationFactory(expired=True)

    cards = cards_of(console.get(DASHBOARD))

    assert cards["card-pending"]["figure"] == 4
    assert listed(console, cards["card-pending"]["url"]) == {i.pk for i in pending} | {failed.pk}
    assert cards["card-invitations-failed"]["figure"] == 1
    assert listed(console, cards["card-invitations-failed"]["url"]) == {failed.pk}


def test_failed_commands_figure_counts_the_last_seven_days(console, organisation):
    recent = [DeviceCommandFactory(status="failed", completed_at=ago(days=1)),
              DeviceCommandFactory(status="timed_out", completed_at=ago(hours=2))]
    DeviceCommandFactory(status="failed", completed_at=ago(days=8))
    DeviceCommandFactory(succeeded=True)
    DeviceCommandFactory()

    card = cards_of(console.get(DASHBOARD))["card-commands-failed"]

    assert card["figure"] == 2
    assert listed(console, card["url"]) == {command.pk for command in recent}


def test_status_page_and_stalled_install_figures(console, organisation):
    running = AutopilotEnrollmentFactory(esp_state=AutopilotEnrollment.EspState.TRACKING)
    failed = [AutopilotEnrollmentFactory(esp_state=AutopilotEnrollment.EspState.FAILED),
              AutopilotEnrollmentFactory(esp_state=AutopilotEnrollment.EspState.TIMED_OUT)]
    AutopilotEnrollmentFactory(esp_state=AutopilotEnrollment.EspState.SUCCEEDED)
    AutopilotEnrollmentFactory(awaiting_user=True)
    stalled = AppInstallFactory(stalled=True)
    AppInstallFactory(installed=True)

    cards = cards_of(console.get(DASHBOARD))

    assert cards["card-status-pages-running"]["figure"] == 1
    assert listed(console, cards["card-status-pages-running"]["url"]) == {running.pk}
    assert cards["card-status-pages-failed"]["figure"] == 2
    assert listed(console, cards["card-status-pages-failed"]["url"]) == {link.pk for link in failed}
    assert cards["card-stalled-apps"]["figure"] == 1
    assert listed(console, cards["card-stalled-apps"]["url"]) == {stalled.pk}


def test_refused_enrollments_today(console, organisation):
    today = [AuditEventFactory(action="enrollment.refused", count=3), AuditEventFactory(action="enrollment.refused")]
    yesterday = AuditEventFactory(action="enrollment.refused")
    AuditEvent.objects.filter(pk=yesterday.pk).update(created_at=checkins.midnight(timezone.now()) - timedelta(hours=1))
    AuditEventFactory(action="device.enrolled")

    card = cards_of(console.get(DASHBOARD))["card-refused-enrollments"]

    assert card["figure"] == 4  # coalesced refusals count every attempt
    assert card["more_url"] == "/admin/enrollment/device/troubleshooting/"
    assert listed(console, card["url"]) == {event.pk for event in today}
    changelist = console.get(card["url"]).context["cl"]  # the list's own date filter shows "Today" chosen
    date_filter = changelist.filter_specs[1]
    assert [choice["display"] for choice in date_filter.choices(changelist) if choice["selected"]] == ["Today"]


def test_figures_link_only_to_lists_the_role_may_open(client, organisation, full_admin):
    client.force_login(full_admin)
    assert all(card["url"] for card in client.get(DASHBOARD).context["cards"])


def test_the_enrollment_url_is_shown_with_a_copy_button_and_its_script(console, organisation):
    html = console.get(DASHBOARD).content.decode()
    assert f'<code id="enrollment-url-value">{organisation.enrollment_url}</code>' in html
    assert 'data-copy-target="enrollment-url-value"' in html
    assert re.search(r'<script src="/static/js/copy\.js" defer></script>', html)
    assert "<script>" not in html  # no inline script: the CSP refuses it


def svg_of(html, chart_id):
    section = html[html.index(f'id="{chart_id}"'):]
    return section[section.index("<svg"):section.index("</svg>") + 6]


def test_charts_are_accessible_svg_drawn_on_the_server(console, organisation, fleet):
    DeviceFactory(os_version="10.0.19045.5011", os_edition=4, last_seen_at=timezone.now())
    DeviceFactory(hololens=True, os_version="10.0.20348.1432", last_seen_at=timezone.now())
    html = console.get(DASHBOARD).content.decode()

    enrollments = svg_of(html, "chart-enrollments")
    assert 'role="img"' in enrollments and "<title" in enrollments and "<desc" in enrollments
    assert enrollments.count('<rect class="bar"') == 30
    # Today: the fleet's first device, the replaced and retired ones (they enrolled too) and the two above.
    assert f"{formats.date_format(timezone.localdate(), 'j N')}: 5" in enrollments

    freshness = svg_of(html, "chart-freshness")
    for label, value in [("Today", 3), ("Earlier in the last 7 days", 1), ("8 to 30 days ago", 1),
                         ("More than 30 days ago", 1), ("Never", 2)]:
        assert f">{label}</text>" in freshness
        assert f"{label}: {value}" in freshness

    releases = svg_of(html, "chart-releases")
    assert "Windows 11 23H2: 6" in releases and "Windows 10 22H2: 1" in releases
    assert "Windows Holographic (build 20348): 1" in releases
    editions = svg_of(html, "chart-editions")
    assert "Pro: 6" in editions and "Enterprise: 1" in editions and "Holographic for Business: 1" in editions
    assert "style=" not in html[html.index('class="console-charts"'):]


def test_charts_are_translated(console, organisation, fleet):
    console.cookies["django_language"] = "fr"
    html = console.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Inscriptions par jour" in svg_of(html, "chart-enrollments")
    assert "Aujourd’hui" in svg_of(html, "chart-freshness")


def test_the_dashboard_makes_the_same_queries_whatever_the_fleet(console, organisation, django_assert_max_num_queries):
    console.get(DASHBOARD)  # session and permissions read once
    with django_assert_max_num_queries(13) as small:  # session, user, one per table, grouped counts
        console.get(DASHBOARD)
    for i in range(40):
        device = DeviceFactory(os_version=f"10.0.{22000 + i % 5}.{i}", last_seen_at=ago(days=i))
        InvitationFactory(status="failed" if i % 2 else "sent")
        DeviceCommandFactory(device=device, status="failed", completed_at=ago(hours=i))
        AutopilotEnrollmentFactory(device=device, esp_state="tracking")
        AppInstallFactory(device=device, stalled=True)
        AuditEventFactory(action="enrollment.refused")
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        console.get(DASHBOARD)
    assert len(large.captured_queries) == len(small.captured_queries)
