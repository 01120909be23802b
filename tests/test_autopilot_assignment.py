"""Which profile an Autopilot device gets and why: explicit selection, group tag, default; shown in
the console and the API; assigned with the console action and the API."""
import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from autopilot.assignment import effective_profile
from autopilot.models import AutopilotDevice
from tests.factories_autopilot import (AutopilotDeviceFactory, AutopilotEnrollmentFactory, GroupTagRuleFactory,
                                       ProfileFactory)

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiles():
    sales = ProfileFactory(name="Sales")
    GroupTagRuleFactory(profile=sales, tag="Sales-01")
    return {"sales": sales, "default": ProfileFactory(name="Everyone", default=True), "kiosk": ProfileFactory(name="Kiosk")}


def test_group_tag_gives_its_profile_whatever_the_case(profiles):
    found = effective_profile(AutopilotDeviceFactory(group_tag="sales-01"))
    assert found.profile == profiles["sales"]
    assert found.reason == "from group tag sales-01"


def test_untagged_device_gets_the_default_profile(profiles):
    found = effective_profile(AutopilotDeviceFactory(group_tag="Unknown"))
    assert (found.profile, found.reason) == (profiles["default"], "default profile")


def test_explicit_selection_wins_and_says_who_and_when(profiles, admin_user):
    device = AutopilotDeviceFactory(group_tag="Sales-01")
    device.assign_profile(profiles["kiosk"], by=admin_user)
    found = effective_profile(device)
    assert found.profile == profiles["kiosk"]
    assert found.reason.startswith("assigned by root@example.com on ")


def test_without_tag_match_or_default_there_is_no_profile_and_it_says_why():
    found = effective_profile(AutopilotDeviceFactory(group_tag="Lab"))
    assert found.profile is None
    assert found.reason == "no profile: group tag Lab matches no profile and there is no default profile"


def test_device_list_shows_state_and_effective_profile_with_reason(client, helpdesk, profiles):
    AutopilotDeviceFactory(serial_number="TAGGED", group_tag="Sales-01")
    AutopilotEnrollmentFactory(record=AutopilotDeviceFactory(serial_number="ENROLLED"))
    client.force_login(helpdesk)
    content = client.get(reverse("admin:autopilot_autopilotdevice_changelist")).content.decode()
    assert "from group tag Sales-01" in content and "default profile" in content
    pending = client.get(reverse("admin:autopilot_autopilotdevice_changelist") + "?state=pending").content.decode()
    assert "TAGGED" in pending and "ENROLLED" not in pending
    enrolled = client.get(reverse("admin:autopilot_autopilotdevice_changelist") + "?state=enrolled").content.decode()
    assert "ENROLLED" in enrolled and "TAGGED" not in enrolled


def test_device_list_redirects_anonymous(client):
    response = client.get(reverse("admin:autopilot_autopilotdevice_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_device_detail_explains_the_profile(console, profiles):
    device = AutopilotDeviceFactory(group_tag="Sales-01")
    content = console.get(reverse("admin:autopilot_autopilotdevice_change", args=[device.pk])).content.decode()
    assert "Sales (from group tag Sales-01)" in content


def test_assign_profile_action_asks_then_assigns(client, enrollment_admin, profiles):
    first, second = AutopilotDeviceFactory(), AutopilotDeviceFactory()
    client.force_login(enrollment_admin)
    url = reverse("admin:autopilot_autopilotdevice_changelist")
    page = client.post(url, {"action": "assign_profile", "_selected_action": [first.pk, second.pk]})
    assert page.status_code == 200 and b"Assign a profile" in page.content
    client.post(url, {"action": "assign_profile", "_selected_action": [first.pk, second.pk], "apply": "1",
                      "profile": profiles["kiosk"].pk})
    for device in (first, second):
        device.refresh_from_db()
        assert device.profile == profiles["kiosk"] and device.profile_assigned_by == enrollment_admin
    assert AuditEvent.objects.filter(action="autopilot.profile_assigned").exists()
    client.post(url, {"action": "assign_profile", "_selected_action": [first.pk], "apply": "1", "profile": ""})
    first.refresh_from_db()
    assert first.profile is None and effective_profile(first).reason == "default profile"


def test_helpdesk_cannot_assign_profiles(client, helpdesk, profiles):
    device = AutopilotDeviceFactory()
    client.force_login(helpdesk)
    client.post(reverse("admin:autopilot_autopilotdevice_changelist"),
                {"action": "assign_profile", "_selected_action": [device.pk], "apply": "1", "profile": profiles["kiosk"].pk})
    device.refresh_from_db()
    assert device.profile is None


# --- API -----------------------------------------------------------------------------------------------

def test_api_lists_devices_with_state_and_effective_profile(helpdesk_api, profiles):
    AutopilotDeviceFactory(serial_number="A-1", group_tag="Sales-01")
    AutopilotEnrollmentFactory(record=AutopilotDeviceFactory(serial_number="B-2"))
    body = helpdesk_api.get("/api/v1/autopilot/devices/").json()
    by_serial = {d["serial_number"]: d for d in body["results"]}
    assert by_serial["A-1"]["state"] == "pending"
    assert by_serial["A-1"]["effective_profile"] == profiles["sales"].pk
    assert by_serial["A-1"]["effective_profile_reason"] == "from group tag Sales-01"
    assert by_serial["B-2"]["state"] == "enrolled"
    pending = helpdesk_api.get("/api/v1/autopilot/devices/?state=pending").json()["results"]
    assert [d["serial_number"] for d in pending] == ["A-1"]
    tagged = helpdesk_api.get("/api/v1/autopilot/devices/?group_tag=sales-01").json()["results"]
    assert [d["serial_number"] for d in tagged] == ["A-1"]


def test_api_assigns_a_profile_to_devices(enrollment_api, enrollment_admin, profiles):
    devices = [AutopilotDeviceFactory(), AutopilotDeviceFactory()]
    response = enrollment_api.post("/api/v1/autopilot/assignments/",
                                   {"profile": profiles["kiosk"].pk, "devices": [d.pk for d in devices]}, format="json")
    assert response.status_code == 200 and response.json() == {"assigned": 2}
    assert set(AutopilotDevice.objects.values_list("profile", flat=True)) == {profiles["kiosk"].pk}
    detail = enrollment_api.get(f"/api/v1/autopilot/devices/{devices[0].pk}/").json()
    assert detail["effective_profile_reason"].startswith(f"assigned by {enrollment_admin.email} on ")


def test_api_refuses_unknown_devices_and_helpdesk_assignments(enrollment_api, helpdesk_api, profiles):
    response = enrollment_api.post("/api/v1/autopilot/assignments/", {"profile": profiles["kiosk"].pk, "devices": [999]},
                                   format="json")
    assert response.status_code == 400
    device = AutopilotDeviceFactory()
    response = helpdesk_api.post("/api/v1/autopilot/assignments/", {"profile": None, "devices": [device.pk]}, format="json")
    assert response.status_code == 403


def test_api_exports_devices_as_csv(helpdesk_api):
    AutopilotDeviceFactory(serial_number="EXP-1", group_tag="Lab")
    response = helpdesk_api.get("/api/v1/autopilot/devices/export/")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User"
    assert lines[1].startswith("EXP-1,") and lines[1].endswith(",Lab,")


def test_api_updates_a_devices_group_tag(enrollment_api, profiles):
    device = AutopilotDeviceFactory()
    response = enrollment_api.patch(f"/api/v1/autopilot/devices/{device.pk}/", {"group_tag": "Sales-01"}, format="json")
    assert response.status_code == 200
    assert response.json()["effective_profile"] == profiles["sales"].pk
