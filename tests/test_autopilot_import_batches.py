"""The Autopilot import's batch writes (COPY on PostgreSQL, bulk_create elsewhere): a serial written by
someone else between the batch's read and its write sends the batch row by row, with nothing lost."""
from unittest import mock

import pytest
from django.core.files.base import ContentFile

from autopilot import imports
from autopilot.models import AutopilotDevice, DeviceImport, ImportRow
from tests.factories_autopilot import hardware_hash

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User"


def run_import(text):
    device_import = imports.create_import(ContentFile(text.encode(), name="devices.csv"), actor=None)
    return imports.run(device_import.pk)


def test_batch_written_meanwhile_by_someone_else_goes_row_by_row(settings):
    text = "\n".join([HEADER, *(f"RACE{i:04d},,{hardware_hash(i)},,user{i}@example.com" for i in range(5))]) + "\n"
    real_insert = imports._insert
    raced = []

    def insert_after_a_rival(model, objects, batch_size):
        if model is AutopilotDevice and not raced:
            # Another import commits RACE0002 between this batch's read and its write.
            raced.append(AutopilotDevice.objects.create(serial_number="RACE0002", serial_key="RACE0002"))
        return real_insert(model, objects, batch_size)

    with mock.patch.object(imports, "_insert", side_effect=insert_after_a_rival):
        device_import = run_import(text)

    assert device_import.status == DeviceImport.Status.DONE
    assert device_import.rows.count() == 5
    lines = {row.serial_number: row.result for row in device_import.rows.all()}
    # The rival's row rolled back with the failed batch; row by row, every line is written once.
    assert set(lines.values()) == {ImportRow.Result.CREATED}
    assert AutopilotDevice.objects.filter(serial_key__startswith="RACE").count() == 5
    assert all(row.device_id for row in device_import.rows.all())


def test_report_lines_point_at_the_records_written(settings):
    text = "\n".join([HEADER, *(f"LINK{i:04d},,{hardware_hash(100 + i)},,"for i in range(3))]) + "\n"
    device_import = run_import(text)

    for row in device_import.rows.select_related("device"):
        assert row.device.serial_number == row.serial_number
