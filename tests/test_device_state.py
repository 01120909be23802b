"""A device's state as the console shows it: a queued wipe or retire says so on the list and on the
device's page (until the device answers it), a device that stopped checking in is silent, and the page
lists what waits for the device with its destructive actions marked."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from management import actions
from management.models import DeviceCommand
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:enrollment_device_changelist")


def badges_of(html, name):
    """The badges in the list row of the device called `name`."""
    [row] = [row for row in html.split("<tr") if f">{name}</a>" in row]
    return re.findall(r'<span class="badge badge-(\w+)"[^>]*>([^<]+)</span>', row)


def page_badges(html):
    summary = re.search(r'<dl class="device-summary".*?</dl>', html, re.S).group(0)
    return re.findall(r'<span class="badge badge-(\w+)"[^>]*>([^<]+)</span>', summary)


@pytest.fixture
def fleet(admin_user):
    now = timezone.now()
    devices = {name: DeviceFactory(name=name, last_seen_at=now - timedelta(hours=1))
               for name in ("PC-SYNCED", "PC-WIPED", "PC-RETIRING", "PC-ANSWERED")}
    devices["PC-SILENT"] = DeviceFactory(name="PC-SILENT", last_seen_at=now - timedelta(days=9))
    devices["PC-GONE"] = DeviceFactory(name="PC-GONE", retired=True)
    actions.run("sync", [devices["PC-SYNCED"]], admin_user)
    actions.run("wipe", [devices["PC-WIPED"]], admin_user, confirmation="PC-WIPED")
    actions.run("retire", [devices["PC-RETIRING"]], admin_user)
    # A wipe the device already acknowledged is not pending any more.
    DeviceCommandFactory(device=devices["PC-ANSWERED"], succeeded=True, verb="Exec",
                         target=actions.WIPE_ROOT + "doWipe", source="console:wipe")
    return devices


def test_the_device_list_shows_pending_wipes_and_retires_and_silent_devices(console, fleet, django_assert_num_queries):
    html = console.get(LIST).content.decode()
    assert badges_of(html, "PC-SYNCED") == [("ok", "Enrolled")]
    assert badges_of(html, "PC-WIPED") == [("danger", "Wipe pending")]
    assert badges_of(html, "PC-RETIRING") == [("warning", "Retire pending")]
    assert badges_of(html, "PC-ANSWERED") == [("ok", "Enrolled")]
    assert badges_of(html, "PC-SILENT") == [("ok", "Enrolled"), ("muted", "Silent")]
    assert badges_of(html, "PC-GONE") == [("muted", "Retired")]
    # The list's columns: what an administrator looks for, in a width that fits a laptop.
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["__str__", "user", "state", "model", "os_version", "enrolled_at", "last_seen_at"]


def test_the_list_reads_the_pending_actions_in_its_one_select(console, admin_user, fleet, django_assert_num_queries):
    console.get(LIST)  # fills the caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        console.get(LIST)
    for n in range(5):
        device = DeviceFactory(name=f"PC-MORE-{n}")
        actions.run("wipe", [device], admin_user, confirmation=device.name)
    with django_assert_num_queries(len(first.captured_queries)):
        html = console.get(LIST).content.decode()
    assert badges_of(html, "PC-MORE-4") == [("danger", "Wipe pending")]


def test_the_device_page_says_wipe_pending_lists_what_waits_and_marks_destructive_actions(console, fleet):
    wiped = fleet["PC-WIPED"]
    html = console.get(reverse("admin:enrollment_device_change", args=[wiped.pk])).content.decode()
    assert page_badges(html) == [("danger", "Wipe pending")]
    waiting = re.search(r'<ul class="pending-actions">.*?</ul>', html, re.S).group(0)
    assert "./Device/Vendor/MSFT/RemoteWipe/doWipe" in waiting
    command = DeviceCommand.objects.get(device=wiped)
    assert reverse("admin:management_devicecommand_cancel", args=[command.pk]) in waiting
    assert re.search(r'id="action-wipe" class="destructive"', html)
    assert re.search(r'id="action-retire" class="destructive"', html)
    assert not re.search(r'id="action-sync" class="destructive"', html)

    synced = console.get(reverse("admin:enrollment_device_change", args=[fleet["PC-SYNCED"].pk])).content.decode()
    assert page_badges(synced) == [("ok", "Enrolled")]
    quiet = console.get(reverse("admin:enrollment_device_change", args=[fleet["PC-ANSWERED"].pk])).content.decode()
    assert "Nothing: the device has received every command." in quiet


def test_the_command_list_shows_the_newest_first(console, fleet):
    html = console.get(reverse("admin:management_devicecommand_changelist")).content.decode()
    shown = [int(pk) for pk in re.findall(r'<th class="field-pk"><a href="[^"]+">(\d+)</a>', html)]
    assert shown == sorted(DeviceCommand.objects.values_list("pk", flat=True), reverse=True)


def test_the_devices_api_says_a_wipe_or_a_retire_is_pending(full_api, admin_user, fleet, django_assert_num_queries):
    body = full_api.get("/api/v1/devices/").json()
    pending = {device["name"]: (device["status"], device["wipe_pending"], device["retire_pending"])
               for device in body["results"]}
    assert pending["PC-WIPED"] == ("enrolled", True, False)
    assert pending["PC-RETIRING"] == ("enrolled", False, True)
    assert pending["PC-ANSWERED"] == ("enrolled", False, False)
    one = full_api.get(f"/api/v1/devices/{fleet['PC-WIPED'].pk}/").json()
    assert (one["wipe_pending"], one["retire_pending"]) == (True, False)
    # Read in the devices' one SELECT: as many queries whatever the number of devices with a wipe pending.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        full_api.get("/api/v1/devices/")
    for n in range(3):
        device = DeviceFactory(name=f"PC-MORE-{n}")
        actions.run("wipe", [device], admin_user, confirmation=device.name)
    with django_assert_num_queries(len(first.captured_queries)):
        full_api.get("/api/v1/devices/")
