"""The device list and device page stay cheap with many devices, users and commands (a fixed
query count with 100,000 devices; bench/devices.py times them). Nothing here is timed."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from management.admin import DEVICE_PAGE_COMMANDS
from autopilot.models import AutopilotEnrollment
from tests.factories import UserFactory
from tests.factories_autopilot import (AppInstallFactory, AutopilotEnrollmentFactory, ProfileFactory,
                                       ProvisioningItemFactory)
from tests.factories_enrollment import (ConfigurationGroupFactory, DeviceCommandFactory, DeviceFactory,
                                        DeviceSettingStateFactory, PinEnrollmentFactory)

pytestmark = pytest.mark.django_db

LIST = reverse("admin:enrollment_device_changelist")
# Session, user, PIN enrollments for their filter, one COUNT, the page of devices with their users.
LIST_QUERIES = 5
# Session, user, the device with its owner, PIN enrollment and replacement, its Autopilot enrollment with its
# profile and record, that enrollment's status-page items, its essential apps, its commands waiting for it and
# its newest commands (each with who queued them), its setting states with their commands and groups. Django's view also reads the device's
# content type once per process (ContentType's cache): the tests fill it first, bench/devices.py warms
# every gunicorn worker.
PAGE_QUERIES = 9


def test_device_list_queries_do_not_grow_with_devices_or_users(console, django_assert_num_queries):
    DeviceFactory.create_batch(3)
    with django_assert_num_queries(LIST_QUERIES):
        assert console.get(LIST).status_code == 200

    for _ in range(40):
        DeviceFactory(user=UserFactory())
    with django_assert_num_queries(LIST_QUERIES):
        assert console.get(LIST).status_code == 200


def test_device_list_counts_the_devices_once(console):
    DeviceFactory.create_batch(2)
    with CaptureQueriesContext(connection) as queries:
        console.get(LIST)
    assert sum("COUNT(" in q["sql"].upper() for q in queries) == 1


def test_device_list_has_no_filter_listing_every_user(console, alice):
    device = DeviceFactory(user=alice, name="PC-ALICE")
    html = console.get(LIST).content.decode()
    assert "user__id__exact" not in html and "PC-ALICE" in html
    # Searching by the user's address still finds the device, and so does the user lookup.
    assert "PC-ALICE" in console.get(LIST, {"q": "alice@example.com"}).content.decode()
    assert "PC-ALICE" in console.get(LIST, {"user__id__exact": device.user_id}).content.decode()


def test_device_page_queries_do_not_grow_with_commands_or_settings(console, django_assert_num_queries):
    quiet, busy = DeviceFactory(), DeviceFactory()
    DeviceCommandFactory.create_batch(2, device=quiet)
    DeviceCommandFactory.create_batch(DEVICE_PAGE_COMMANDS + 20, device=busy, queued_by=UserFactory())
    for i in range(3):
        DeviceSettingStateFactory(device=busy, loc_uri=f"./Device/Vendor/MSFT/Policy/Config/Bench/Setting{i}")

    console.get(reverse("admin:enrollment_device_change", args=[quiet.pk]))  # fills the content-type cache
    for device in (quiet, busy):
        with django_assert_num_queries(PAGE_QUERIES):
            assert console.get(reverse("admin:enrollment_device_change", args=[device.pk])).status_code == 200


def test_device_page_queries_do_not_depend_on_what_the_device_has(console, django_assert_num_queries):
    bare = DeviceFactory(user=None, upn="")
    full = DeviceFactory(pin_enrollment=PinEnrollmentFactory(), replaced_by=DeviceFactory(name="PC-OLD"))
    DeviceCommandFactory.create_batch(3, device=full, queued_by=UserFactory())
    DeviceSettingStateFactory(device=full, group=ConfigurationGroupFactory(name="Kiosks"))
    DeviceSettingStateFactory(device=full, loc_uri="./Device/Vendor/MSFT/Policy/Config/Camera/Other", command=None)
    link = AutopilotEnrollmentFactory(device=full, profile=ProfileFactory(name="Autopilot kiosk"),
                                      esp_state=AutopilotEnrollment.EspState.TRACKING)
    ProvisioningItemFactory.create_batch(2, enrollment=link)
    AppInstallFactory(device=full, name="Company Portal")

    console.get(reverse("admin:enrollment_device_change", args=[bare.pk]))  # fills the content-type cache
    pages = {}
    for device in (bare, full):
        with django_assert_num_queries(PAGE_QUERIES):
            pages[device] = console.get(reverse("admin:enrollment_device_change", args=[device.pk]))
        assert pages[device].status_code == 200
    html = pages[full].content.decode()
    for shown in (full.user.email, full.pin_enrollment.name, "PC-OLD", "Kiosks", "Autopilot kiosk",
                  link.record.serial_number, "0 done, 0 failed of 2", "Company Portal"):
        assert shown in html


def test_device_page_shows_the_newest_commands_a_page_at_a_time_and_links_to_all(console):
    device = DeviceFactory()
    commands = DeviceCommandFactory.create_batch(DEVICE_PAGE_COMMANDS + 5, device=device)
    newest_first = [c.pk for c in reversed(commands)]
    page = reverse("admin:enrollment_device_change", args=[device.pk])

    def shown(html):
        return [int(pk) for pk in re.findall(r'<tr class="command-\w+">\s*<td>(\d+)</td>', html)]

    html = console.get(page).content.decode()
    assert shown(html) == newest_first[:DEVICE_PAGE_COMMANDS]
    assert "?commands=2#commands" in html and "?commands=0" not in html
    older = console.get(page, {"commands": 2}).content.decode()
    assert shown(older) == newest_first[DEVICE_PAGE_COMMANDS:]
    assert "?commands=1#commands" in older and "?commands=3" not in older
    assert shown(console.get(page, {"commands": "x"}).content.decode()) == newest_first[:DEVICE_PAGE_COMMANDS]
    assert f"{reverse('admin:management_devicecommand_changelist')}?device__id__exact={device.pk}" in html