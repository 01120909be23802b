import pytest
from django.contrib.auth.models import Permission

from tests.factories import UserFactory
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices/"


@pytest.fixture
def viewer(db):
    user = UserFactory(email="viewer@example.com", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_device"))
    return user


def test_device_api_refuses_anonymous(client):
    assert client.get(URL, secure=True).status_code in (401, 403)


def test_device_api_refuses_staff_without_view_permission(client):
    client.force_login(UserFactory(email="staff@example.com", is_staff=True))
    assert client.get(URL, secure=True).status_code == 403


def test_device_api_refuses_non_staff_even_with_permission(client):
    user = UserFactory(email="plain@example.com")
    user.user_permissions.add(Permission.objects.get(codename="view_device"))
    client.force_login(user)
    assert client.get(URL, secure=True).status_code == 403


def test_device_api_lists_and_retrieves(client, viewer, alice):
    device = DeviceFactory(user=alice, hololens=True)
    DeviceFactory(user=alice)
    client.force_login(viewer)
    listing = client.get(URL, secure=True).json()
    assert listing["count"] == 2
    detail = client.get(f"{URL}{device.pk}/", secure=True).json()
    assert detail["device_id"] == device.device_id and detail["user"] == "alice@example.com"
    assert detail["kind"] == "hololens2"
    assert ["MAC", "00-15-5D-01-02-04"] in detail["context_items"]
    assert "appsrv_digest" not in detail and "client_digest" not in detail


def test_device_api_filters(client, viewer, alice, bob):
    DeviceFactory(user=alice, hololens=True)
    DeviceFactory(user=bob)
    client.force_login(viewer)
    assert client.get(URL, {"kind": "hololens2"}, secure=True).json()["count"] == 1
    assert client.get(URL, {"user": "BOB@example.com"}, secure=True).json()["count"] == 1


def test_device_api_is_read_only(client, admin_user, alice):
    device = DeviceFactory(user=alice)
    client.force_login(admin_user)
    assert client.post(URL, {}, secure=True).status_code == 405
    assert client.delete(f"{URL}{device.pk}/", secure=True).status_code == 405
