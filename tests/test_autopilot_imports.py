"""Importing Autopilot devices from Windows' CSV through the console form and the API: good files,
forgiving form, every data rule, file-level errors, the update rule, progress, the report, export,
and a 20,000-row file with flat memory."""
import csv
import io
import re
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from autopilot import imports
from autopilot.models import AutopilotDevice, DeviceImport, ImportRow
from tests.factories_autopilot import AutopilotDeviceFactory, hardware_hash

pytestmark = pytest.mark.django_db

HEADER = "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User"


def csv_file(text, name="devices.csv", encoding="utf-8"):
    return SimpleUploadedFile(name, text.encode(encoding) if isinstance(text, str) else text, content_type="text/csv")


def upload(client, text, capture, **kwargs):
    with capture(execute=True):
        response = client.post(reverse("admin:autopilot_deviceimport_add"), {"file": csv_file(text, **kwargs)})
    return response


def last_import():
    return DeviceImport.objects.latest("pk")


def results():
    return {row.line: (row.result, row.message) for row in last_import().rows.all()}


@pytest.fixture
def run_upload(console, django_capture_on_commit_callbacks):
    def run(text, **kwargs):
        response = upload(console, text, django_capture_on_commit_callbacks, **kwargs)
        assert response.status_code == 302, response.content[:2000]
        return last_import()
    return run


# --- good files and the console pages -----------------------------------------------------------------

def test_console_upload_imports_devices_and_shows_the_report(console, django_capture_on_commit_callbacks):
    text = "\n".join([HEADER, f"PF1ABC23,00330-80000-00000-AA123,{hardware_hash(1)},Sales-01,alice@example.com",
                      f"PF1ABC24,,{hardware_hash(2)},,"]) + "\n"
    response = upload(console, text, django_capture_on_commit_callbacks)
    device_import = last_import()
    assert response.url == reverse("admin:autopilot_deviceimport_report", args=[device_import.pk])
    assert device_import.status == DeviceImport.Status.DONE
    assert (device_import.created_count, device_import.failed_count, device_import.total_rows) == (2, 0, 2)
    record = AutopilotDevice.objects.get(serial_number="PF1ABC23")
    assert (record.product_id, record.group_tag, record.assigned_user) == ("00330-80000-00000-AA123", "Sales-01",
                                                                          "alice@example.com")
    assert record.hardware_hash == hardware_hash(1) and len(record.hardware_hash_digest) == 64
    page = console.get(response.url)
    assert page.status_code == 200
    assert not page.context["refresh"]
    content = page.content.decode()
    assert "PF1ABC23" in content and 'value="100"' in content
    # The banner says what is sure when the upload returns; the status line says it is done.
    assert [str(m) for m in page.context["messages"]] == ["devices.csv is uploaded."]
    assert "being imported" not in content
    assert re.search(r'id="import-status">Status: <strong>Done</strong>', content)
    devices = console.get(reverse("admin:autopilot_autopilotdevice_changelist") + "?state=pending")
    assert "PF1ABC24" in devices.content.decode()


def test_a_queued_import_shows_progress_and_refreshes_itself(console, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        console.post(reverse("admin:autopilot_deviceimport_add"), {"file": csv_file(f"{HEADER}\nA1\nA2\nA3\n")})
    device_import = last_import()
    assert device_import.status == DeviceImport.Status.QUEUED and device_import.total_rows == 3
    page = console.get(reverse("admin:autopilot_deviceimport_report", args=[device_import.pk]))
    assert page.context["refresh"]
    assert b'http-equiv="refresh"' in page.content and b"import-progress" in page.content


def test_upload_page_redirects_anonymous(client):
    response = client.get(reverse("admin:autopilot_deviceimport_add"))
    assert response.status_code == 302 and "login" in response.url


def test_helpdesk_cannot_upload_but_reads_reports(client, helpdesk, django_capture_on_commit_callbacks):
    client.force_login(helpdesk)
    assert upload(client, f"{HEADER}\nA1\n", django_capture_on_commit_callbacks).status_code == 403
    assert not DeviceImport.objects.exists()
    device_import = imports.run(imports.create_import(csv_file(f"{HEADER}\nA1\n"), actor=None).pk)
    assert client.get(reverse("admin:autopilot_deviceimport_report", args=[device_import.pk])).status_code == 200


def test_enrollment_admin_uploads(client, enrollment_admin, django_capture_on_commit_callbacks):
    client.force_login(enrollment_admin)
    assert client.get(reverse("admin:autopilot_deviceimport_add")).status_code == 200
    assert upload(client, f"{HEADER}\nA1\n", django_capture_on_commit_callbacks).status_code == 302
    assert AutopilotDevice.objects.filter(serial_number="A1").exists()


# --- forgiving about form -------------------------------------------------------------------------------

def test_bom_crlf_quotes_spacing_header_case_and_missing_columns_are_accepted(run_upload):
    text = ('\ufeff  device serial NUMBER , "HARDWARE hash" ,Notes\r\n'
            f'"SN-001" , "{hardware_hash(1)}" ,first\r\n'
            '\r\n'
            '  SN-002  ,,"a note, with a comma"\r\n')
    device_import = run_upload(text)
    assert device_import.status == DeviceImport.Status.DONE, device_import.error
    assert device_import.created_count == 2
    assert set(AutopilotDevice.objects.values_list("serial_number", flat=True)) == {"SN-001", "SN-002"}
    assert AutopilotDevice.objects.get(serial_number="SN-001").hardware_hash == hardware_hash(1)


def test_utf16_files_from_powershell_are_read(run_upload):
    device_import = run_upload(f"{HEADER}\r\nSN-16,,,Lab,\r\n", encoding="utf-16")
    assert device_import.created_count == 1
    assert AutopilotDevice.objects.get().group_tag == "Lab"


def test_semicolon_separated_files_from_excel_are_read(run_upload):
    device_import = run_upload("Device Serial Number;Group Tag\nSN-1;Lab\n")
    assert AutopilotDevice.objects.get().group_tag == "Lab" and device_import.created_count == 1


def test_old_order_id_column_is_the_group_tag(run_upload):
    run_upload("Device Serial Number,Windows Product ID,Hardware Hash,OrderID\nSN-1,,,Sales\n")
    assert AutopilotDevice.objects.get().group_tag == "Sales"


# --- strict about data ------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    (",,,Sales,", "the serial number is missing"),
    ("Default string,,,,", "placeholder serial number"),
    ("To be filled by O.E.M.,,,,", "placeholder serial number"),
    ("System Serial Number,,,,", "placeholder serial number"),
    ("0,,,,", "placeholder serial number"),
    ("00000000,,,,", "placeholder serial number"),
    ("  none ,,,,", "placeholder serial number"),
    ("SN-X,,not*base64!,,", "hardware hash is not valid base64"),
    ("SN-X,,,,not-an-email", "is not an email address"),
    ("SN-X,00330 80000,,,", "Windows Product ID"),
    ("SN-X,,," + "T" * 129 + ",", "group tag is longer"),
    ("S" * 65 + ",,,,", "longer than 64 characters"),
    ("SN-X,,,,,surplus", "6 cells but the header has 5 columns"),
])
def test_each_bad_row_is_refused_with_its_reason_and_the_others_are_imported(run_upload, line, message):
    device_import = run_upload(f"{HEADER}\nGOOD-1,,,,\n{line}\nGOOD-2,,,,\n")
    assert device_import.status == DeviceImport.Status.DONE
    assert (device_import.created_count, device_import.failed_count) == (2, 1)
    result, reason = results()[3]
    assert result == ImportRow.Result.FAILED and message in reason
    assert set(AutopilotDevice.objects.values_list("serial_number", flat=True)) == {"GOOD-1", "GOOD-2"}


def test_duplicates_within_the_file_are_refused_first_line_wins(run_upload):
    device_import = run_upload(f"{HEADER}\nSN-1,,{hardware_hash(1)},A,\nsn-1,,,B,\nSN-2,,{hardware_hash(1)},,\n")
    assert (device_import.created_count, device_import.failed_count) == (1, 2)
    assert "serial number already on line 2" in results()[3][1]
    assert "hardware hash already on line 2" in results()[4][1]
    assert AutopilotDevice.objects.get().group_tag == "A"


def test_duplicates_in_later_batches_are_refused_first_line_wins_even_when_it_was_refused():
    # Line 3 is refused at its write (its hash is registered under SN-OLD) yet keeps its serial and
    # hash: later lines with them are duplicates of line 3. Two lines per batch: every duplicate is in
    # a later batch than its first line.
    AutopilotDeviceFactory(serial_number="SN-OLD", hardware_hash=hardware_hash(5))
    text = (f"{HEADER}\nSN-1,,{hardware_hash(1)},A,\nSN-2,,{hardware_hash(5)},,\nSN-3,,,,\nsn-1,,,B,\n"
            f"SN-4,,{hardware_hash(1)},,\nSN-2,,{hardware_hash(6)},,\nSN-5,,{hardware_hash(5)},,\n")
    device_import = imports.run(imports.create_import(csv_file(text), actor=None).pk, batch_size=2)
    assert (device_import.created_count, device_import.failed_count) == (2, 5)
    lines = results()
    assert "already registered for serial number SN-OLD" in lines[3][1]
    assert [lines[line][1] for line in (5, 6, 7, 8)] == [
        "serial number already on line 2 of this file", "hardware hash already on line 2 of this file",
        "serial number already on line 3 of this file", "hardware hash already on line 3 of this file"]
    assert set(AutopilotDevice.objects.values_list("serial_number", "group_tag")) == {
        ("SN-OLD", ""), ("SN-1", "A"), ("SN-3", "")}


def test_existing_serial_is_updated_with_filled_cells_and_empty_cells_keep_values(run_upload):
    AutopilotDeviceFactory(serial_number="SN-1", group_tag="Old", assigned_user="alice@example.com", hardware_hash="")
    AutopilotDeviceFactory(serial_number="SN-2", group_tag="Same")
    device_import = run_upload(f"{HEADER}\nsn-1,,{hardware_hash(9)},New,\nSN-2,,,Same,\n")
    assert (device_import.updated_count, device_import.unchanged_count, device_import.created_count) == (1, 1, 0)
    record = AutopilotDevice.objects.get(serial_number="SN-1")
    assert (record.group_tag, record.assigned_user, record.hardware_hash) == ("New", "alice@example.com", hardware_hash(9))
    assert results()[2] == (ImportRow.Result.UPDATED, "updated: group tag, hardware hash")
    assert results()[3][0] == ImportRow.Result.UNCHANGED


def test_a_hardware_hash_registered_under_another_serial_is_refused(run_upload):
    AutopilotDeviceFactory(serial_number="SN-OLD", hardware_hash=hardware_hash(5))
    device_import = run_upload(f"{HEADER}\nSN-NEW,,{hardware_hash(5)},,\n")
    assert device_import.failed_count == 1
    assert "already registered for serial number SN-OLD" in results()[2][1]
    assert not AutopilotDevice.objects.filter(serial_number="SN-NEW").exists()


def test_a_serial_longer_than_the_limit_once_in_capitals_is_refused_on_its_line(run_upload):
    long_in_capitals = "ßßA" * 16  # 48 characters, 80 in capitals ("ß" is "SS")
    device_import = run_upload(f"{HEADER}\n{long_in_capitals},,{hardware_hash(6)},,\nSN-FINE,,{hardware_hash(7)},,\n")
    assert (device_import.status, device_import.failed_count) == ("done", 1)
    assert "longer than 64 characters" in results()[2][1]
    assert AutopilotDevice.objects.filter(serial_number="SN-FINE").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty"),
    (b"\n\n", "The file is empty"),
    (b"Serial,Hash\nSN-1,abc\n", "Device Serial Number"),
    (f"{HEADER}\n".encode(), "header but no devices"),
    (b"Device Serial Number\n\xff\xd8\xff\xe0 not text", "not UTF-8"),
    (b"Device Serial Number,Serial Number,Device Serial Number\nA,B,C\n", "twice"),
])
def test_unreadable_files_fail_with_a_clear_message(content, message):
    device_import = imports.create_import(csv_file(content), actor=None)
    device_import = imports.run(device_import.pk)
    assert device_import.status == DeviceImport.Status.FAILED
    assert message in device_import.error
    assert not AutopilotDevice.objects.exists()
    assert not device_import.chunks.exists()


def test_empty_upload_is_a_form_error(console):
    response = console.post(reverse("admin:autopilot_deviceimport_add"), {"file": csv_file(b"")})
    assert response.status_code == 200 and "The submitted file is empty." in response.content.decode()
    assert not DeviceImport.objects.exists()


def test_an_interrupted_import_resumes_without_writing_lines_twice():
    device_import = imports.create_import(csv_file(f"{HEADER}\nSN-1,,,,\nSN-1,,,,\nSN-3,,,,\n"), actor=None)
    # A first worker wrote line 2 and died.
    device_import.start()
    record = AutopilotDeviceFactory(serial_number="SN-1", hardware_hash="")
    ImportRow.objects.create(device_import=device_import, line=2, serial_number="SN-1", result="created", device=record,
                             serial_key="SN-1")
    device_import = imports.run(device_import.pk)
    assert device_import.status == DeviceImport.Status.DONE
    assert list(device_import.rows.values_list("line", "result")) == [(2, "created"), (3, "failed"), (4, "created")]
    assert AutopilotDevice.objects.count() == 2


def test_batches_write_every_row_once(run_upload, settings):
    lines = [f"SN-{i:05d},,{hardware_hash(i)},,\n" for i in range(25)]
    device_import = imports.create_import(csv_file(HEADER + "\n" + "".join(lines)), actor=None)
    device_import = imports.run(device_import.pk, batch_size=4)
    assert device_import.created_count == 25 == device_import.rows.count() == AutopilotDevice.objects.count()


# --- export -----------------------------------------------------------------------------------------------

def test_export_is_the_windows_format_and_imports_back_unchanged(console, run_upload):
    run_upload(f"{HEADER}\nSN-1,00330-80000-00000-AA123,{hardware_hash(1)},\"Sales, EU\",alice@example.com\nSN-2,,,,\n")
    response = console.get(reverse("admin:autopilot_autopilotdevice_export"))
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == imports.COLUMNS
    assert rows[1] == ["SN-1", "00330-80000-00000-AA123", hardware_hash(1), "Sales, EU", "alice@example.com"]
    device_import = run_upload(text)
    assert device_import.unchanged_count == 2 and device_import.created_count == 0


def test_export_action_exports_the_selection(console):
    chosen, _other = AutopilotDeviceFactory(), AutopilotDeviceFactory()
    response = console.post(reverse("admin:autopilot_autopilotdevice_changelist"),
                            {"action": "export_csv", "_selected_action": [chosen.pk]})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith(chosen.serial_number)


# --- API --------------------------------------------------------------------------------------------------

def test_api_upload_answers_202_and_the_report(enrollment_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = enrollment_api.post("/api/v1/autopilot/imports/",
                                       {"file": csv_file(f"{HEADER}\nSN-1,,,,\nDefault string,,,,\n")}, format="multipart")
    assert response.status_code == 202
    import_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    report = enrollment_api.get(f"/api/v1/autopilot/imports/{import_id}/").json()
    assert (report["status"], report["created_count"], report["failed_count"], report["percent"]) == ("done", 1, 1, 100)
    failed = enrollment_api.get(f"/api/v1/autopilot/imports/{import_id}/rows/?result=failed").json()
    assert failed["count"] == 1 and failed["results"][0]["line"] == 3
    assert "placeholder" in failed["results"][0]["message"]


def test_api_refuses_an_upload_without_a_file(enrollment_api):
    response = enrollment_api.post("/api/v1/autopilot/imports/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()


def test_api_helpdesk_reads_imports_but_cannot_upload(helpdesk_api):
    response = helpdesk_api.post("/api/v1/autopilot/imports/", {"file": csv_file(f"{HEADER}\nSN-1\n")}, format="multipart")
    assert response.status_code == 403
    assert helpdesk_api.get("/api/v1/autopilot/imports/").status_code == 200


def test_api_refuses_anonymous_uploads(client):
    response = client.post("/api/v1/autopilot/imports/", {"file": csv_file(f"{HEADER}\nSN-1\n")}, secure=True)
    assert response.status_code in (401, 403)
    assert not DeviceImport.objects.exists()


# --- a large file -----------------------------------------------------------------------------------------

def generated_csv(count, start=0):
    lines = [HEADER]
    lines += [f"LRG{i:07d},,{hardware_hash(i)},Group-{i % 7},user{i % 50}@example.com" for i in range(start, start + count)]
    return ("\r\n".join(lines) + "\r\n").encode()


def traced_upload(client, count, start, capture):
    """Upload a generated file through the console; the import it queues runs under tracemalloc.
    Returns (DeviceImport, peak bytes)."""
    with capture() as callbacks:
        response = client.post(reverse("admin:autopilot_deviceimport_add"), {"file": csv_file(generated_csv(count, start))})
    assert response.status_code == 302
    tracemalloc.start()
    try:
        for callback in callbacks:
            callback()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return last_import(), peak


def test_a_20000_row_file_is_imported_in_flat_memory_with_right_counts(console, django_capture_on_commit_callbacks):
    small, small_peak = traced_upload(console, 2000, 100000, django_capture_on_commit_callbacks)
    device_import, large_peak = traced_upload(console, 20000, 0, django_capture_on_commit_callbacks)
    assert small.created_count == 2000
    assert device_import.status == DeviceImport.Status.DONE, device_import.error
    assert (device_import.total_rows, device_import.processed_rows, device_import.created_count) == (20000, 20000, 20000)
    assert device_import.failed_count == device_import.updated_count == device_import.unchanged_count == 0
    assert device_import.rows.count() == 20000 and AutopilotDevice.objects.count() == 22000
    page = console.get(reverse("admin:autopilot_deviceimport_report", args=[device_import.pk]) + "?page=100")
    assert page.status_code == 200 and b"LRG0019999" in page.content
    # Memory: a file ten times larger needs nowhere near ten times the memory.
    assert large_peak < 3 * small_peak, (small_peak, large_peak)
    assert large_peak < 40 * 1024 * 1024


def test_storing_an_upload_leaves_nothing_of_it_in_memory():
    # The process that stores an upload (a web worker) keeps its database connection (CONN_MAX_AGE).
    # Before, on PostgreSQL, psycopg's count of statement texts kept the stored chunks' statements
    # there: twice the file's bytes (7.7 MB for this 3.8 MB file).
    content = generated_csv(10000)
    tracemalloc.start()
    try:
        imports.create_import(csv_file(content), actor=None)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(content) > 3_800_000 and held < 256 * 1024, held

def traced_import(count, start):
    """Store and import a generated file of `count` rows; returns (DeviceImport, the peak of the Python
    heap that storing and importing it allocated, in bytes: tracemalloc counts from its start)."""
    content = generated_csv(count, start)
    tracemalloc.start()
    try:
        device_import = imports.create_import(csv_file(content), actor=None)
        device_import = imports.run(device_import.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return device_import, peak


def test_the_memory_of_storing_and_importing_a_file_does_not_grow_with_its_rows(monkeypatch):
    # A file ten times longer: what the upload and the import hold grows by a few statements' bytes at
    # most, not per row. Before, on PostgreSQL, they kept per row: the stored chunks' statements (about
    # twice the file's bytes, in psycopg's count of statement texts), every serial and hash digest seen
    # (~270 bytes) and each batch's look-ups (~150 bytes). Chunks of 64 KB: the smaller file (420 KB)
    # is several chunks too, so that both peaks include a whole chunk's and a whole batch's.
    monkeypatch.setattr(imports, "CHUNK_BYTES", 64 * 1024)
    small, small_peak = traced_import(1000, 200000)
    large, large_peak = traced_import(10000, 300000)
    assert (small.created_count, large.created_count) == (1000, 10000), (small.error, large.error)
    # With this code: 0 to 60 bytes a row (the peaks vary by a few hundred kilobytes with the garbage
    # collector's timing); before, 830 bytes a row on PostgreSQL.
    per_row = (large_peak - small_peak) / 9000
    assert per_row < 100, (small_peak, large_peak, per_row)
