"""/api/v1/pin-enrollments/: create (the PIN in that answer only), list, retrieve, regenerate, revoke,
unlock and the WCD project, with the console's roles."""
import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from enrollment.models import PinEnrollment
from tests.factories_enrollment import PPKG_PIN, ConfigurationGroupFactory, DeviceFactory, PinEnrollmentFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/pin-enrollments/"


def new_enrollment(**fields):
    return {"name": "Lab PCs", "owner": "alice@example.com", "configuration_groups": [],
            "expires_at": (timezone.now() + timedelta(days=30)).isoformat(), "max_devices": 25, **fields}


@pytest.fixture
def package(alice):
    return PinEnrollmentFactory(upn="enroll-kiosks@example.com", owner=alice, max_devices=10)


def test_create_returns_the_pin_once_and_stores_its_hash(enrollment_api, alice, organisation):
    lab, kiosks = ConfigurationGroupFactory(name="Lab"), ConfigurationGroupFactory(name="Kiosks")
    response = enrollment_api.post(URL, new_enrollment(upn="Enroll-Lab@Example.com",
                                                       configuration_groups=["Lab", "Lab", "Kiosks"]), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    pin = body["pin"]
    assert body["upn"] == "enroll-lab@example.com" and body["owner"] == "alice@example.com"
    assert sorted(body["configuration_groups"]) == ["Kiosks", "Lab"] and body["status"] == "active"
    assert set(PinEnrollment.objects.get().configuration_groups.all()) == {lab, kiosks}
    assert body["devices_used"] == 0 and body["discovery_url"].endswith("/EnrollmentServer/Discovery.svc")
    pin_enrollment = PinEnrollment.objects.get()
    assert pin not in pin_enrollment.pin_hash
    assert AuditEvent.objects.filter(action="pin_enrollment.created").exists()

    for response in (enrollment_api.get(URL), enrollment_api.get(f"{URL}{pin_enrollment.pk}/")):
        assert pin not in response.content.decode() and "pin_hash" not in response.content.decode()


@pytest.mark.parametrize("fields, field", [
    ({"upn": "alice@example.com"}, "upn"),
    ({"upn": "enroll-kiosks@example.com"}, "upn"),
    ({"owner": "nobody@example.com"}, "owner"),
    ({"max_devices": 0}, "max_devices"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"configuration_groups": ["No such group"]}, "configuration_groups"),
])
def test_create_refuses_bad_input_and_saves_nothing(enrollment_api, alice, package, fields, field):
    response = enrollment_api.post(URL, new_enrollment(**fields), format="json")
    assert response.status_code == 400 and field in response.json()
    assert PinEnrollment.objects.count() == 1


def test_list_and_retrieve_show_usage(helpdesk_api, alice, package):
    DeviceFactory(user=alice, pin_enrollment=package, method="ppkg")
    listing = helpdesk_api.get(URL).json()
    assert listing["count"] == 1 and listing["results"][0]["devices_used"] == 1
    detail = helpdesk_api.get(f"{URL}{package.pk}/").json()
    assert detail["upn"] == "enroll-kiosks@example.com" and detail["max_devices"] == 10


def test_devices_of_a_pin_enrollment_are_listed_by_the_device_api(helpdesk_api, alice, package):
    device = DeviceFactory(user=alice, pin_enrollment=package, method="ppkg")
    DeviceFactory(user=alice)
    listing = helpdesk_api.get("/api/v1/devices/", {"pin_enrollment": package.pk}).json()
    assert [d["id"] for d in listing["results"]] == [device.pk]
    assert listing["results"][0]["pin_enrollment"] == package.pk
    assert helpdesk_api.get("/api/v1/devices/", {"pin_enrollment": "x"}).status_code == 400


def test_regenerate_returns_a_new_pin_and_revoke_stops_it(enrollment_api, package):
    response = enrollment_api.post(f"{URL}{package.pk}/regenerate/")
    assert response.status_code == 200
    new_pin = response.json()["pin"]
    assert new_pin != PPKG_PIN and response.json()["pin_generation"] == 2

    response = enrollment_api.post(f"{URL}{package.pk}/revoke/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert enrollment_api.post(f"{URL}{package.pk}/revoke/").status_code == 409
    assert enrollment_api.post(f"{URL}{package.pk}/regenerate/").status_code == 409


def test_unlock(enrollment_api, alice):
    package = PinEnrollmentFactory(owner=alice, locked=True)
    assert enrollment_api.post(f"{URL}{package.pk}/unlock/").status_code == 200
    package.refresh_from_db()
    assert not package.is_locked
    assert enrollment_api.post(f"{URL}{package.pk}/unlock/").status_code == 409


def test_wcd_project_needs_the_current_pin(enrollment_api, package):
    assert enrollment_api.post(f"{URL}{package.pk}/wcd-project/", {"pin": "WRONG"}, format="json").status_code == 400
    response = enrollment_api.post(f"{URL}{package.pk}/wcd-project/", {"pin": PPKG_PIN}, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert any(name.endswith("/customizations.xml") for name in archive.namelist())


# Roles

def test_anonymous_is_refused(client, package):
    assert client.get(URL, secure=True).status_code in (401, 403)
    assert client.post(URL, new_enrollment(), secure=True).status_code in (401, 403)


def test_helpdesk_reads_but_cannot_create_or_change(helpdesk_api, alice, package):
    assert helpdesk_api.get(URL).status_code == 200
    assert helpdesk_api.post(URL, new_enrollment(), format="json").status_code == 403
    for action in ("regenerate", "revoke", "unlock", "wcd-project"):
        assert helpdesk_api.post(f"{URL}{package.pk}/{action}/", {"pin": PPKG_PIN}, format="json").status_code == 403
    package.refresh_from_db()
    assert not package.is_revoked and package.pin_generation == 1 and PinEnrollment.objects.count() == 1


def test_full_administrator_manages(full_api, alice):
    assert full_api.post(URL, new_enrollment(), format="json").status_code == 201


def test_schema_documents_the_endpoints(helpdesk_api):
    paths = helpdesk_api.get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    for path in ("/api/v1/pin-enrollments/", "/api/v1/pin-enrollments/{id}/revoke/",
                 "/api/v1/pin-enrollments/{id}/wcd-project/"):
        assert path in paths
