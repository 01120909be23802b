"""Searching the big console lists (100,000 devices; mdmportal/search.py): the same matches as
Django's search, with the related fields searched in their own table, and on PostgreSQL an index lookup
(trigram indexes of the *_trigram_search migrations). bench/devices.py times them."""
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import User
from autopilot.models import AutopilotDevice
from enrollment.models import Device
from management.models import DeviceCommand
from tests.factories import UserFactory
from tests.factories_autopilot import AutopilotDeviceFactory
from tests.factories_enrollment import DeviceCommandFactory, DeviceFactory

pytestmark = pytest.mark.django_db

DEVICES = reverse("admin:enrollment_device_changelist")
COMMANDS = reverse("admin:management_devicecommand_changelist")


def listed_devices(console, term):
    html = console.get(DEVICES, {"q": term}).content.decode()
    return set(re.findall(r"\bPC-[A-Z]+\b", html))


def test_device_search_finds_the_owners_email_case_insensitively(console, alice, bob):
    DeviceFactory(user=alice, upn="", name="PC-ALICE")
    DeviceFactory(user=bob, upn="", name="PC-BOB")
    assert listed_devices(console, "ALICE@example") == {"PC-ALICE"}
    assert listed_devices(console, "example.com") == {"PC-ALICE", "PC-BOB"}


def test_a_whole_email_address_finds_that_owners_and_upns_devices_exactly(console, alice, bob):
    DeviceFactory(user=alice, upn="", name="PC-ALICE")
    DeviceFactory(user=None, upn="Bob@Example.com", name="PC-BOBUPN")
    DeviceFactory(user=UserFactory(email="jimbob@example.com"), upn="", name="PC-JIMBOB")
    DeviceFactory(user=None, upn="", name="PC-NOBODY", model="bob@example.com")  # not an email field
    assert listed_devices(console, "ALICE@EXAMPLE.COM") == {"PC-ALICE"}
    # jimbob@example.com contains bob@example.com, but it is someone else's address.
    assert listed_devices(console, "bob@example.com") == {"PC-BOBUPN"}
    # Part of an address is still a substring of every field.
    assert listed_devices(console, "bob@example") == {"PC-BOBUPN", "PC-JIMBOB", "PC-NOBODY"}


def test_device_search_finds_substrings_of_the_devices_own_columns(console):
    DeviceFactory(name="PC-ONE", serial_number="SN-7781-XY", user=None, upn="")
    DeviceFactory(name="PC-TWO", model="Surface Laptop 5", user=None, upn="")
    DeviceFactory(name="PC-THREE", certificate_thumbprint="ab12cd34" * 5, user=None, upn="")
    assert listed_devices(console, "7781") == {"PC-ONE"}
    assert listed_devices(console, "laptop") == {"PC-TWO"}
    assert listed_devices(console, "AB12CD34AB") == {"PC-THREE"}
    assert listed_devices(console, "nothing-like-this") == set()


def test_device_search_needs_every_word_and_keeps_quoted_words_together(console, alice):
    DeviceFactory(user=alice, name="PC-ALPHA", model="Surface Laptop 5")
    DeviceFactory(user=alice, name="PC-BETA", model="Surface Pro 9")
    assert listed_devices(console, "alice surface laptop") == {"PC-ALPHA"}
    assert listed_devices(console, '"Surface Pro"') == {"PC-BETA"}
    assert listed_devices(console, '"Pro Surface"') == set()


def test_device_search_makes_the_same_queries_as_the_list(console, alice, django_assert_num_queries):
    from tests.test_devices_admin_queries import LIST_QUERIES

    DeviceFactory.create_batch(3, user=alice)
    with django_assert_num_queries(LIST_QUERIES):
        assert console.get(DEVICES, {"q": "alice@example.com"}).status_code == 200


def test_device_search_does_not_join_the_user_table(console, alice):
    from django.test.utils import CaptureQueriesContext

    DeviceFactory(user=alice)
    with CaptureQueriesContext(connection) as queries:
        console.get(DEVICES, {"q": "alice"})
    device_queries = [q["sql"] for q in queries if 'FROM "enrollment_device"' in q["sql"] and "LIKE" in q["sql"]]
    count, page = device_queries
    assert "JOIN" not in count
    # The page joins the owners to show them, but matches their emails in a subquery of the user table (the
    # page's own WHERE: the columns before it hold subqueries of their own, the device's pending actions).
    assert '"accounts_user"."email"' not in page.split('FROM "enrollment_device"', 1)[1].split(" WHERE ", 1)[1]


def test_command_search_finds_the_devices_name_and_the_target(console):
    device = DeviceFactory(name="PC-KIOSK-12")
    DeviceCommandFactory(device=device, target="./Device/Vendor/MSFT/Reboot/RebootNow")
    DeviceCommandFactory(target="./Device/Vendor/MSFT/DeviceStatus/OS/Mode")

    def listed(term):
        html = console.get(COMMANDS, {"q": term}).content.decode()
        return len(re.findall(r'name="_selected_action"', html))

    assert listed("kiosk-12") == 1
    assert listed("devicestatus") == 1
    assert listed("vendor/msft") == 2


def test_autopilot_device_and_user_lists_search_their_columns(console, alice):
    AutopilotDeviceFactory(serial_number="PF3XQ9ZL", group_tag="Kiosk")
    AutopilotDeviceFactory(serial_number="R90AB123")
    html = console.get(reverse("admin:autopilot_autopilotdevice_changelist"), {"q": "3xq9"}).content.decode()
    assert "PF3XQ9ZL" in html and "R90AB123" not in html
    html = console.get(reverse("admin:accounts_user_changelist"), {"q": "ALICE@EXAMPLE"}).content.decode()
    assert "alice@example.com" in html


def admin_search(model, term):
    request = RequestFactory().get("/", {"q": term})
    request.user = UserFactory(is_superuser=True, is_staff=True)
    queryset, _ = admin.site._registry[model].get_search_results(request, model.objects.all(), term)
    return queryset


@pytest.mark.parametrize("model, indexes", [
    (Device, ["enrollment_device_name_trgm", "enrollment_device_certificate_thumbprint_trgm",
              "accounts_user_email_trgm", "user_id = ANY"]),
    (AutopilotDevice, ["autopilot_autopilotdevice_serial_number_trgm", "autopilot_autopilotdevice_ztd_id_trgm"]),
    (User, ["accounts_user_email_trgm", "accounts_user_display_name_trgm"]),
])
def test_search_is_an_index_lookup_on_postgresql(model, indexes):
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's (pg_trgm); SQLite has none")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small enough for a scan otherwise
    plan = admin_search(model, "example-term").order_by().explain()
    assert "Seq Scan" not in plan
    for index in indexes:
        assert index in plan


def test_a_search_by_a_whole_email_address_is_an_exact_index_lookup_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = admin_search(Device, "dana@contoso.com").order_by().explain()
    assert "Seq Scan" not in plan and "_trgm" not in plan
    assert "device_upn_upper_idx" in plan and "user_email_upper_idx" in plan, plan


def test_command_search_reads_the_devices_through_their_indexes_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's (pg_trgm); SQLite has none")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = admin_search(DeviceCommand, "kiosk").explain()
    assert "Seq Scan on enrollment_device " not in plan + " "
    assert "enrollment_device_name_trgm" in plan


def test_a_search_field_the_subquery_search_cannot_serve_is_a_system_check_error():
    from mdmportal.search import SubquerySearchMixin

    class GroupMembersAdmin(SubquerySearchMixin, admin.ModelAdmin):
        search_fields = ["email", "groups__name"]  # a many-to-many: Django's JOIN search would duplicate rows

    errors = GroupMembersAdmin(User, admin.site).check()
    assert [error.id for error in errors] == ["mdmportal.E010"]
    assert "groups__name" in errors[0].msg
    assert admin.site._registry[Device].check() == []
