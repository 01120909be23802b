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
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import User
from autopilot.models import AutopilotDevice, DeviceImport
from mdmportal import csv_cells
from tests.factories import AuditEventFactory, UserFactory
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


# --- Users and audit log exports -------------------------------------------------------------------

USER_EXPORT = "/admin/accounts/user/export/"
AUDIT_EXPORT = "/admin/accounts/auditevent/export/"
USER_IMPORT = "/admin/accounts/user/import/"


def by_first_cell(rows):
    return {row[0]: row for row in rows[1:]}


def test_console_users_export_neutralises_formula_cells(console):
    UserFactory(email="carol@example.com", display_name=FORMULA, mdm_username="@corp")

    rows = rows_of(console.get(USER_EXPORT))

    assert rows[0] == ["email", "display_name", "language", "mdm_username", "device_limit"]
    assert by_first_cell(rows)["carol@example.com"][1:4] == ["'" + FORMULA, "en", "'@corp"]


def test_api_users_export_neutralises_formula_cells(helpdesk_api):
    UserFactory(email="-carol@example.com", display_name="+33 1 23 45 67 89")

    rows = rows_of(helpdesk_api.get("/api/v1/users/export/"))

    assert by_first_cell(rows)["'-carol@example.com"][1] == "'+33 1 23 45 67 89"


def test_console_audit_export_neutralises_formula_cells(console):
    AuditEventFactory(action="user.added", actor_label="@SUM(1+1)*cmd|' /C calc'!A0", target_label=FORMULA,
                      target_type="=accounts.User", detail={"note": "=1+1"})

    rows = rows_of(console.get(AUDIT_EXPORT))

    row = next(row for row in rows[1:] if row[2] == "user.added")
    assert row[1] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row[3] == "'=accounts.User"
    assert row[5] == "'" + FORMULA
    assert json.loads(row[rows[0].index("detail")]) == {"note": "=1+1"}


def test_api_audit_export_neutralises_formula_cells(helpdesk_api):
    AuditEventFactory(action="user.added", target_label="@evil", actor_label="-1+2")

    rows = rows_of(helpdesk_api.get("/api/v1/audit-events/export/"))

    row = next(row for row in rows[1:] if row[2] == "user.added")
    assert (row[1], row[5]) == ("'-1+2", "'@evil")


def test_the_users_export_imports_back_unchanged(console):
    values = [
        dict(email="carol@example.com", display_name=FORMULA, language="fr", mdm_username="@corp\\carol",
             device_limit=0),
        dict(email="-dave@example.com", display_name="+33 1 23", language="en", mdm_username=None, device_limit=7),
        dict(email="erin@example.com", display_name="'=already quoted", language="en", mdm_username="-erin",
             device_limit=5),
        dict(email="frank@example.com", display_name="Sales, EU \"FR\"", language="fr", mdm_username="'@x",
             device_limit=2),
    ]
    for fields in values:
        UserFactory(**fields)
    # Administrators stay: only the users the file holds are removed, then imported from it again.
    text = b"".join(console.get(USER_EXPORT, {"is_staff__exact": "0"}).streaming_content)
    User.objects.filter(is_staff=False).delete()

    response = console.post(USER_IMPORT, {"file": SimpleUploadedFile("users.csv", text, content_type="text/csv")})

    assert response.status_code == 200
    assert [row.errors for row in response.context["report"].rows] == [[]] * len(values)
    for fields in values:
        stored = User.objects.get(email=fields["email"])
        assert {name: getattr(stored, name) for name in fields} == fields


def test_the_user_importer_takes_the_neutralising_quote_off(console):
    text = ("email,display_name,mdm_username\n"
            "carol@example.com,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'@corp\n"
            "dave@example.com,'quoted but no formula,''-two quotes\n").encode()

    console.post(USER_IMPORT, {"file": SimpleUploadedFile("users.csv", text, content_type="text/csv")})

    carol, dave = User.objects.get(email="carol@example.com"), User.objects.get(email="dave@example.com")
    assert (carol.display_name, carol.mdm_username) == (FORMULA, "@corp")
    assert (dave.display_name, dave.mdm_username) == ("'quoted but no formula", "'-two quotes")
