"""The Autopilot device import in the console: upload, the self-refreshing progress bar, the report."""
import base64
from unittest import mock

import pytest

from autopilot import imports
from autopilot.models import DeviceImport
from tests.browser.pages import expect, screenshot, sign_in_console

pytestmark = pytest.mark.browser

HASH = base64.b64encode(b"hardware hash of a test PC").decode()
CSV = ("\ufeffDevice Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\r\n"
       f'"SN-1001",,{HASH},Sales-01,alice@contoso.com\r\n'
       "Default string,,,Sales-01,\r\n"
       f"SN-1002 , ,{HASH[:-4]}QUJD,,\r\n")


def test_administrator_uploads_a_file_and_reads_the_row_by_row_report(open_page, full_admin, tmp_path):
    upload = tmp_path / "autopilot.csv"
    upload.write_text(CSV, encoding="utf-8")
    page = open_page("console")
    sign_in_console(page, full_admin)
    page.goto("/admin/autopilot/deviceimport/add/")

    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_role("button", name="Upload and import").click()

    expect(page.locator("#import-status")).to_contain_text("Done")
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-counts")).to_contain_text("Created")
    report = page.locator("#import-report tbody tr")
    expect(report).to_have_count(3)
    expect(report.filter(has_text="Default string")).to_contain_text("placeholder")
    page.get_by_role("link", name="refused").click()
    expect(page.locator("#import-report tbody tr")).to_have_count(1)
    screenshot(page, "console-autopilot-import")


def test_the_progress_page_refreshes_itself_until_the_import_is_over(open_page, full_admin, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    # The broker has not handed the import to a worker yet: the page shows it waiting.
    with mock.patch("autopilot.tasks.run_import.delay"):
        device_import = imports.create_import(SimpleUploadedFile("late.csv", CSV.encode()), actor=full_admin)
    page = open_page("console")
    sign_in_console(page, full_admin)
    page.goto(f"/admin/autopilot/deviceimport/{device_import.pk}/report/")
    expect(page.locator("#import-progress")).to_have_attribute("value", "0")
    expect(page.locator("#content-main")).to_contain_text("Waiting for a worker")

    imports.run(device_import.pk)  # the worker picks it up; the open page catches up by itself

    expect(page.locator("#import-progress")).to_have_attribute("value", "100", timeout=15000)
    expect(page.locator("#import-status")).to_contain_text("Done")
    assert DeviceImport.objects.get(pk=device_import.pk).is_finished
