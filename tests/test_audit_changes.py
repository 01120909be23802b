"""What an administrator adds, changes and deletes, in the console or over the API, is audited the same
way: one row per change, named `<model>.<verb>`, with who, from which address, the object, and `via`
saying which door it came through; the API's rows name the fields the call set."""
import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from autopilot.models import Profile
from management.models import ConfigurationGroup
from tests.factories_autopilot import AutopilotDeviceFactory, ProfileFactory
from tests.factories_enrollment import ConfigurationGroupFactory, DeviceFactory
from tests.test_configuration_console import group_form as full_group_form

pytestmark = pytest.mark.django_db

PROFILES = "/api/v1/autopilot/profiles/"
GROUPS = "/api/v1/configuration-groups/"


def group_form(**fields):
    return full_group_form(**{"settings-TOTAL_FORMS": "0", **fields})


def rows(model_name):
    return [(e.action, e.actor_label, e.ip, e.target_id, e.detail)
            for e in AuditEvent.objects.filter(action__startswith=f"{model_name}.").order_by("pk")]


def test_console_adds_changes_and_deletes_a_group_each_audited(client, enrollment_admin):
    client.force_login(enrollment_admin)
    client.post(reverse("admin:management_configurationgroup_add"), group_form(), REMOTE_ADDR="192.0.2.21")
    group = ConfigurationGroup.objects.get()
    change = reverse("admin:management_configurationgroup_change", args=[group.pk])
    client.post(change, group_form(name="Lobby"), REMOTE_ADDR="192.0.2.22")
    delete = reverse("admin:management_configurationgroup_delete", args=[group.pk])
    assert client.post(delete, {"post": "yes"}, REMOTE_ADDR="192.0.2.23").status_code == 302

    who, pk = enrollment_admin.email, str(group.pk)
    assert rows("configurationgroup") == [
        ("configurationgroup.added", who, "192.0.2.21", pk, {"via": "console", "change": [{"added": {}}]}),
        ("configurationgroup.changed", who, "192.0.2.22", pk,
         {"via": "console", "change": [{"changed": {"fields": ["Name"]}}]}),
        ("configurationgroup.deleted", who, "192.0.2.23", pk, {"via": "console"}),
    ]


def test_api_adds_changes_and_deletes_a_profile_each_audited_with_the_fields_it_set(enrollment_api,
                                                                                     enrollment_admin):
    created = enrollment_api.post(PROFILES, {"name": "Kiosks", "device_type": "windows_pc", "group_tags": ["Kiosk"]},
                                  format="json", REMOTE_ADDR="198.51.100.21")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    # A key the API does not know, or may not be written, is no field it set.
    changed = enrollment_api.patch(f"{PROFILES}{pk}/", {"description": "Lobby PCs", "no_such_field": 1,
                                                        "ztd_correlation_id": "x"},
                                   format="json", REMOTE_ADDR="198.51.100.22")
    assert changed.status_code == 200, changed.json()
    assert enrollment_api.delete(f"{PROFILES}{pk}/", REMOTE_ADDR="198.51.100.23").status_code == 204

    who = enrollment_admin.email
    assert rows("profile") == [
        ("profile.added", who, "198.51.100.21", str(pk), {"via": "api", "fields": ["device_type", "group_tags", "name"]}),
        ("profile.changed", who, "198.51.100.22", str(pk), {"via": "api", "fields": ["description"]}),
        ("profile.deleted", who, "198.51.100.23", str(pk), {"via": "api"}),
    ]
    assert not Profile.objects.exists()


def test_api_changes_a_group_and_its_members_each_audited(enrollment_api, enrollment_admin,
                                                          django_capture_on_commit_callbacks):
    device = DeviceFactory()
    group = ConfigurationGroupFactory(name="Kiosks")
    with django_capture_on_commit_callbacks(execute=True):
        assert enrollment_api.patch(f"{GROUPS}{group.pk}/", {"priority": 5}, format="json",
                                    REMOTE_ADDR="198.51.100.31").status_code == 200
        assert enrollment_api.post(f"{GROUPS}{group.pk}/membership/", {"add_devices": [device.pk]}, format="json",
                                   REMOTE_ADDR="198.51.100.32").status_code == 200

    who, pk = enrollment_admin.email, str(group.pk)
    assert rows("configurationgroup") == [
        ("configurationgroup.changed", who, "198.51.100.31", pk, {"via": "api", "fields": ["priority"]}),
        ("configurationgroup.membership_changed", who, "198.51.100.32", pk,
         {"via": "api", "add_devices": [str(device)]}),
    ]


def test_api_edits_of_an_app_and_an_autopilot_device_are_audited_by_their_model_names(enrollment_api):
    app = enrollment_api.post("/api/v1/autopilot/essential-apps/", {
        "profile": ProfileFactory().pk, "name": "Agent", "kind": "msi", "msi_url": "https://apps.example.com/agent.msi",
        "product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}", "sha256": "a" * 64}, format="json")
    assert app.status_code == 201, app.json()
    device = AutopilotDeviceFactory()
    assert enrollment_api.patch(f"/api/v1/autopilot/devices/{device.pk}/", {"group_tag": "Lobby"},
                                format="json").status_code == 200

    assert [(action, detail) for action, _, _, _, detail in rows("essentialapp") + rows("autopilotdevice")] == [
        ("essentialapp.added", {"via": "api", "fields": ["kind", "msi_url", "name", "product_code", "profile",
                                                         "sha256"]}),
        ("autopilotdevice.changed", {"via": "api", "fields": ["group_tag"]}),
    ]
