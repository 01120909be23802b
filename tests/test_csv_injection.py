"""CSV exports opened in a spreadsheet: a cell that starts with = + - @, a tab or a carriage return is
read as a formula (OWASP "CSV Injection"), so =HYPERLINK(...) typed into a group tag would become a
live link in the administrator's Excel. Exports put a single quote before such cells; the project's
own importer takes it off again, so an export imports back unchanged. A strict base64 hardware hash
is left as it is: Microsoft's importer must read it, and base64 has no parentheses, quotes, pipes or
exclamation marks, so it cannot call a function."""
import base64
import csv
import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from autopilot.models import AutopilotDevice, DeviceImport
from mdmportal import csv_cells
from tests.factories_autopilot import AutopilotDeviceFactory

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://x","y")'
# base64 whose first six bits are 62: the first character is "+".
PLUS_HASH = base64.b64encode(b"\xf8" + hashlib.sha512(b"plus").digest() * 4).decode()


def device(**fields):
    return AutopilotDeviceFactory(**fields)


def rows_of(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_console_export_neutralises_formula_cells(console):
    device(serial_number="SN-FORMULA", group_tag=FORMULA, assigned_user="+bob@example.com")

    rows = rows_of(console.get(reverse("admin:autopilot_autopilotdevice_export")))

    assert rows[1][0] == "SN-FORMULA"
    assert rows[1][3] == "'" + FORMULA
    assert rows[1][4] == "'+bob@example.com"


def test_api_export_neutralises_formula_cells(helpdesk_api):
    device(serial_number="@SUM(1+1)*cmd|' /C calc'!A0", product_id="-1234", group_tag="-2+3")

    rows = rows_of(helpdesk_api.get("/api/v1/autopilot/devices/export/"))

    assert rows[1][0] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert rows[1][1] == "'-1234"
    assert rows[1][3] == "'-2+3"


def test_a_base64_hardware_hash_starting_with_plus_stays_importable_by_microsoft(console):
    assert PLUS_HASH.startswith("+")
    device(serial_number="SN-PLUS", hardware_hash=PLUS_HASH)

    rows = rows_of(console.get(reverse("admin:autopilot_autopilotdevice_export")))

    assert rows[1][2] == PLUS_HASH


def test_the_export_imports_back_unchanged(console, django_capture_on_commit_callbacks):
    values = [
        dict(serial_number="SN-FORMULA", group_tag=FORMULA, assigned_user="+bob@example.com"),
        dict(serial_number="@SN-AT", product_id="-1234", group_tag="-2+3", hardware_hash=PLUS_HASH),
        dict(serial_number="'=SN-QUOTED", group_tag="'@already quoted"),
        dict(serial_number="SN-PLAIN", group_tag="Sales, EU", assigned_user="alice@example.com"),
    ]
    for fields in values:
        device(**fields)
    text = b"".join(console.get(reverse("admin:autopilot_autopilotdevice_export")).streaming_content)

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("admin:autopilot_deviceimport_add"),
                                {"file": SimpleUploadedFile("devices.csv", text, content_type="text/csv")})

    assert response.status_code == 302
    device_import = DeviceImport.objects.latest("pk")
    assert (device_import.unchanged_count, device_import.created_count, device_import.failed_count) == (4, 0, 0)
    for fields in values:
        stored = AutopilotDevice.objects.get(serial_number=fields["serial_number"])
        assert {name: getattr(stored, name) for name in fields} == fields


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+33 1 23", "'+33 1 23"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("'=1", "''=1"), ("''@x", "'''@x"),
    ("Sales", "Sales"), ("'quoted", "'quoted"), ("a=b", "a=b"), ("", ""), (None, ""), (42, "42"),
])
def test_a_cell_is_neutralised_and_restored_exactly(value, cell):
    assert csv_cells.neutralise(value) == cell
    assert csv_cells.restore(cell) == ("" if value is None else str(value))
