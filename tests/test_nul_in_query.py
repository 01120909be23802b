"""A NUL in a query parameter is a clear 400, never a 500: PostgreSQL stores and compares no NUL in
text (a filter on it is a DataError), so the console's and the API's filters would fail on it."""
import pytest

from tests.factories_autopilot import DeviceImportFactory
from tests.factories_enrollment import DeviceFactory

API = [
    "/api/v1/autopilot/devices/?serial=a%00",
    "/api/v1/autopilot/devices/?group_tag=a%00",
    "/api/v1/autopilot/imports/{import_id}/rows/?result=%00",
    "/api/v1/autopilot/provisioning/?state=%00",
    "/api/v1/devices/{device_id}/commands/?status=%00",
    "/api/v1/autopilot/devices/?serial=ok&a%00=b",  # in a parameter's name
]
CONSOLE = [
    "/admin/accounts/auditevent/?action=%00",
    "/admin/enrollment/device/?status__exact=%00",
    "/admin/accounts/auditevent/export/?q=%00",
    "/admin/accounts/auditevent/?q=a\x00b",  # raw, as some servers pass it
]


@pytest.fixture
def objects(organisation):
    return {"import_id": DeviceImportFactory().pk, "device_id": DeviceFactory().pk}


@pytest.mark.parametrize("url", API)
def test_a_nul_in_an_api_filter_is_a_400_on_postgresql(postgres, full_api, objects, url):
    response = full_api.get(url.format(**objects))

    assert response.status_code == 400, getattr(response, "content", b"streamed")[:300]
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("url", CONSOLE)
def test_a_nul_in_a_console_filter_is_a_400_on_postgresql(postgres, console, url):
    response = console.get(url)

    assert response.status_code == 400, getattr(response, "content", b"streamed")[:300]
    assert "NUL" in response.content.decode()


def test_filters_without_a_nul_still_work_on_postgresql(postgres, full_api, console, objects):
    assert full_api.get("/api/v1/autopilot/devices/?serial=a").status_code == 200
    assert full_api.get(f"/api/v1/devices/{objects['device_id']}/commands/?status=pending").status_code == 200
    assert console.get("/admin/accounts/auditevent/?action=x&q=%2500").status_code == 200
