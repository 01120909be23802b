import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from enrollment.models import Device
from tests.factories import UserFactory
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:enrollment_device_changelist")


@pytest.fixture
def helpdesk(db):
    user = UserFactory(email="helpdesk@example.com", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_device"))
    return user


@pytest.fixture
def devices(alice, bob):
    return {
        "pc": DeviceFactory(user=alice, name="PC-ALICE"),
        "hololens": DeviceFactory(user=bob, hololens=True, name="HOLO-BOB"),
        "old": DeviceFactory(user=alice, replaced=True, name="PC-ALICE-OLD", federated=True),
    }


def test_device_list_redirects_anonymous(client, devices):
    response = client.get(LIST, secure=True)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_device_list_is_forbidden_to_staff_without_the_view_permission(client, devices):
    client.force_login(UserFactory(email="staff@example.com", is_staff=True))
    assert client.get(LIST, secure=True).status_code == 403


def test_device_list_shows_devices_to_who_may_view_them(client, helpdesk, devices):
    client.force_login(helpdesk)
    html = client.get(LIST, secure=True).content.decode()
    assert "PC-ALICE" in html and "HOLO-BOB" in html and "PC-ALICE-OLD" in html


@pytest.mark.parametrize("query, shown, hidden", [
    ({"kind__exact": "hololens2"}, "HOLO-BOB", "PC-ALICE"),
    ({"status__exact": "replaced"}, "PC-ALICE-OLD", "HOLO-BOB"),
    ({"method__exact": "onpremise"}, "HOLO-BOB", "PC-ALICE-OLD"),
])
def test_device_list_filters(client, helpdesk, devices, query, shown, hidden):
    client.force_login(helpdesk)
    html = client.get(LIST, query, secure=True).content.decode()
    assert shown in html and f">{hidden}<" not in html


def test_device_list_filters_by_user(client, helpdesk, devices, bob):
    client.force_login(helpdesk)
    html = client.get(LIST, {"user__id__exact": bob.pk}, secure=True).content.decode()
    assert "HOLO-BOB" in html and ">PC-ALICE<" not in html


def test_device_detail_shows_fields_and_context_items_read_only(client, helpdesk, devices):
    device = devices["pc"]
    client.force_login(helpdesk)
    response = client.get(reverse("admin:enrollment_device_change", args=[device.pk]), secure=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert device.device_id in html and device.certificate_thumbprint in html
    assert "<th>MAC</th><td>00-15-5D-01-02-04</td>" in html
    assert 'name="name"' not in html  # no editable inputs


def test_device_context_items_are_escaped(client, helpdesk, alice):
    device = DeviceFactory(user=alice, context_items=[["DeviceName", "<script>x</script>"]])
    client.force_login(helpdesk)
    html = client.get(reverse("admin:enrollment_device_change", args=[device.pk]), secure=True).content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_devices_cannot_be_added_by_hand(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("admin:enrollment_device_add"), secure=True).status_code == 403


def test_enrolled_queryset_counts_only_live_enrollments(devices):
    assert Device.objects.enrolled().count() == 2


def test_deleting_a_device_in_the_console_is_audited_with_who_and_from_where(console, admin_user, devices):
    from accounts.models import AuditEvent

    old = devices["old"]
    response = console.post(LIST, {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"},
                            REMOTE_ADDR="192.0.2.9")

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="device.deleted")
    assert (event.actor, event.target_label, event.ip) == (admin_user, str(old), "192.0.2.9")
    assert not Device.objects.filter(pk=old.pk).exists()
