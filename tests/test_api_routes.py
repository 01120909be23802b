"""Every route of the JSON API, by name and path, and every path and method of its OpenAPI schema: moving
where an app's routes are declared must change none of them."""
import importlib
import json
from pathlib import Path

import pytest
from django.urls import resolve, reverse

from tests.api_helpers import HttpsAPIClient

ROOT = Path(__file__).resolve().parent.parent
APPS = ["invitations", "enrollment", "autopilot"]

# (URL name, its arguments, the path it reverses to and resolves from)
ROUTES = [
    ("api-schema", {}, "/api/v1/schema/"),
    ("enrollment-url", {}, "/api/v1/enrollment-url/"),
    ("enrollment-url-regenerate", {}, "/api/v1/enrollment-url/regenerate/"),
    ("user-list", {}, "/api/v1/users/"),
    ("user-export", {}, "/api/v1/users/export/"),
    ("user-detail", {"pk": 7}, "/api/v1/users/7/"),
    ("invitation-list", {}, "/api/v1/invitations/"),
    ("invitation-detail", {"pk": 7}, "/api/v1/invitations/7/"),
    ("invitation-resend", {"pk": 7}, "/api/v1/invitations/7/resend/"),
    ("invitation-revoke", {"pk": 7}, "/api/v1/invitations/7/revoke/"),
    ("url-rotation-list", {}, "/api/v1/enrollment-url/rotations/"),
    ("url-rotation-detail", {"pk": 7}, "/api/v1/enrollment-url/rotations/7/"),
    ("audit-event-list", {}, "/api/v1/audit-events/"),
    ("audit-event-export", {}, "/api/v1/audit-events/export/"),
    ("audit-event-detail", {"pk": 7}, "/api/v1/audit-events/7/"),
    ("device-bulk-action", {"name": "wipe"}, "/api/v1/devices/actions/wipe/"),
    ("device-action", {"pk": 7, "name": "wipe"}, "/api/v1/devices/7/actions/wipe/"),
    ("device-configuration", {"pk": 7}, "/api/v1/devices/7/configuration/"),
    ("configuration-catalogue", {}, "/api/v1/configuration-catalogue/"),
    ("device-list", {}, "/api/v1/devices/"),
    ("device-detail", {"pk": 7}, "/api/v1/devices/7/"),
    ("device-commands", {"pk": 7}, "/api/v1/devices/7/commands/"),
    ("pin-enrollment-list", {}, "/api/v1/pin-enrollments/"),
    ("pin-enrollment-detail", {"pk": 7}, "/api/v1/pin-enrollments/7/"),
    ("pin-enrollment-regenerate", {"pk": 7}, "/api/v1/pin-enrollments/7/regenerate/"),
    ("pin-enrollment-revoke", {"pk": 7}, "/api/v1/pin-enrollments/7/revoke/"),
    ("pin-enrollment-unlock", {"pk": 7}, "/api/v1/pin-enrollments/7/unlock/"),
    ("pin-enrollment-wcd-project", {"pk": 7}, "/api/v1/pin-enrollments/7/wcd-project/"),
    ("configuration-group-list", {}, "/api/v1/configuration-groups/"),
    ("configuration-group-detail", {"pk": 7}, "/api/v1/configuration-groups/7/"),
    ("configuration-group-members", {"pk": 7}, "/api/v1/configuration-groups/7/members/"),
    ("configuration-group-membership", {"pk": 7}, "/api/v1/configuration-groups/7/membership/"),
    ("configuration-setting-list", {}, "/api/v1/configuration-settings/"),
    ("configuration-setting-detail", {"pk": 7}, "/api/v1/configuration-settings/7/"),
    ("autopilot-profile-list", {}, "/api/v1/autopilot/profiles/"),
    ("autopilot-profile-detail", {"pk": 7}, "/api/v1/autopilot/profiles/7/"),
    ("autopilot-profile-offline-file", {"pk": 7}, "/api/v1/autopilot/profiles/7/offline-file/"),
    ("autopilot-essential-app-list", {}, "/api/v1/autopilot/essential-apps/"),
    ("autopilot-essential-app-detail", {"pk": 7}, "/api/v1/autopilot/essential-apps/7/"),
    ("autopilot-import-list", {}, "/api/v1/autopilot/imports/"),
    ("autopilot-import-detail", {"pk": 7}, "/api/v1/autopilot/imports/7/"),
    ("autopilot-import-rows", {"pk": 7}, "/api/v1/autopilot/imports/7/rows/"),
    ("autopilot-device-list", {}, "/api/v1/autopilot/devices/"),
    ("autopilot-device-export", {}, "/api/v1/autopilot/devices/export/"),
    ("autopilot-device-detail", {"pk": 7}, "/api/v1/autopilot/devices/7/"),
    ("autopilot-assignment-list", {}, "/api/v1/autopilot/assignments/"),
    ("autopilot-provisioning-list", {}, "/api/v1/autopilot/provisioning/"),
    ("autopilot-provisioning-detail", {"pk": 7}, "/api/v1/autopilot/provisioning/7/"),
    ("autopilot-app-install-list", {}, "/api/v1/autopilot/app-installs/"),
    ("autopilot-app-install-detail", {"pk": 7}, "/api/v1/autopilot/app-installs/7/"),
]

SCHEMA = {
    "/api/v1/audit-events/": {"get"},
    "/api/v1/audit-events/{id}/": {"get"},
    "/api/v1/audit-events/export/": {"get"},
    "/api/v1/autopilot/app-installs/": {"get"},
    "/api/v1/autopilot/app-installs/{id}/": {"get"},
    "/api/v1/autopilot/assignments/": {"post"},
    "/api/v1/autopilot/devices/": {"get"},
    "/api/v1/autopilot/devices/{id}/": {"put", "delete", "get", "patch"},
    "/api/v1/autopilot/devices/export/": {"get"},
    "/api/v1/autopilot/essential-apps/": {"post", "get"},
    "/api/v1/autopilot/essential-apps/{id}/": {"put", "delete", "get", "patch"},
    "/api/v1/autopilot/imports/": {"post", "get"},
    "/api/v1/autopilot/imports/{id}/": {"get"},
    "/api/v1/autopilot/imports/{id}/rows/": {"get"},
    "/api/v1/autopilot/profiles/": {"post", "get"},
    "/api/v1/autopilot/profiles/{id}/": {"put", "delete", "get", "patch"},
    "/api/v1/autopilot/profiles/{id}/offline-file/": {"get"},
    "/api/v1/autopilot/provisioning/": {"get"},
    "/api/v1/autopilot/provisioning/{id}/": {"get"},
    "/api/v1/configuration-catalogue/": {"get"},
    "/api/v1/configuration-groups/": {"post", "get"},
    "/api/v1/configuration-groups/{id}/": {"put", "delete", "get", "patch"},
    "/api/v1/configuration-groups/{id}/members/": {"get"},
    "/api/v1/configuration-groups/{id}/membership/": {"post"},
    "/api/v1/configuration-settings/": {"post", "get"},
    "/api/v1/configuration-settings/{id}/": {"put", "delete", "get", "patch"},
    "/api/v1/devices/": {"get"},
    "/api/v1/devices/{id}/": {"get"},
    "/api/v1/devices/{id}/actions/{name}/": {"post"},
    "/api/v1/devices/{id}/commands/": {"get"},
    "/api/v1/devices/{id}/configuration/": {"get"},
    "/api/v1/devices/actions/{name}/": {"post"},
    "/api/v1/enrollment-url/": {"get"},
    "/api/v1/enrollment-url/regenerate/": {"post"},
    "/api/v1/enrollment-url/rotations/": {"get"},
    "/api/v1/enrollment-url/rotations/{id}/": {"get"},
    "/api/v1/invitations/": {"post", "get"},
    "/api/v1/invitations/{id}/": {"get"},
    "/api/v1/invitations/{id}/resend/": {"post"},
    "/api/v1/invitations/{id}/revoke/": {"post"},
    "/api/v1/pin-enrollments/": {"post", "get"},
    "/api/v1/pin-enrollments/{id}/": {"get"},
    "/api/v1/pin-enrollments/{id}/regenerate/": {"post"},
    "/api/v1/pin-enrollments/{id}/revoke/": {"post"},
    "/api/v1/pin-enrollments/{id}/unlock/": {"post"},
    "/api/v1/pin-enrollments/{id}/wcd-project/": {"post"},
    "/api/v1/users/": {"post", "get"},
    "/api/v1/users/{id}/": {"patch", "get", "put"},
    "/api/v1/users/export/": {"get"},
}


@pytest.mark.parametrize("name, kwargs, path", ROUTES, ids=[name for name, _, _ in ROUTES])
def test_every_api_route_keeps_its_name_and_path(name, kwargs, path):
    assert reverse(name, kwargs=kwargs) == path
    assert resolve(path).url_name == name


def test_the_schema_lists_every_path_and_method_and_no_other(db):
    schema = json.loads(HttpsAPIClient().get("/api/v1/schema/", {"format": "json"}).content)

    assert {path: set(operations) for path, operations in schema["paths"].items()} == SCHEMA


def test_each_app_declares_its_api_routes_in_its_one_router_module():
    """Each app's routes are in `<app>/api_urls.py`, with the app's one router; no other module builds
    a router, so the place to look for (or add) an endpoint is the same in every app."""
    building = sorted(str(path.relative_to(ROOT)) for package in [*APPS, "mdmportal"]
                      for path in (ROOT / package).rglob("*.py") if "Router()" in path.read_text())
    assert building == [f"{app}/api_urls.py" for app in sorted(APPS)]
    for app in APPS:
        router = importlib.import_module(f"{app}.api_urls").router
        assert {viewset.__module__.split(".")[0] for _, viewset, _ in router.registry} == {app}
