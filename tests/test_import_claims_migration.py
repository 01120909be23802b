"""Autopilot migration 0005: report lines record what their line claimed for the in-file duplicate
check. An import still running when it is applied gets the claims of the lines it wrote, so that once
resumed it still refuses their serials and hashes; finished imports are left as they were."""
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("autopilot", "0004_tenant_in_entra_settings")]
AFTER = [("autopilot", "0005_import_row_claims")]
DIGEST = "ab" * 32


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_imports_still_running_get_the_claims_of_the_lines_they_wrote(transactional_db):
    old = migrate(BEFORE)
    try:
        Device = old.get_model("autopilot", "AutopilotDevice")
        DeviceImport = old.get_model("autopilot", "DeviceImport")
        ImportRow = old.get_model("autopilot", "ImportRow")
        running = DeviceImport.objects.create(file_name="running.csv", status="running")
        done = DeviceImport.objects.create(file_name="done.csv", status="done")
        one = Device.objects.create(serial_number="sn-1", serial_key="SN-1", hardware_hash_digest=DIGEST)
        two = Device.objects.create(serial_number="SN-2", serial_key="SN-2", hardware_hash_digest="")
        ImportRow.objects.create(device_import=running, line=2, serial_number="sn-1", result="created", device=one)
        ImportRow.objects.create(device_import=running, line=3, serial_number="SN-1", result="failed",
                                 message="serial number already on line 2 of this file")
        ImportRow.objects.create(device_import=running, line=4, serial_number="SN-2", result="unchanged", device=two)
        ImportRow.objects.create(device_import=done, line=2, serial_number="sn-1", result="unchanged", device=one)

        new = migrate(AFTER)
        rows = (new.get_model("autopilot", "ImportRow").objects.order_by("device_import_id", "line")
                .values_list("device_import_id", "line", "serial_key", "hardware_hash_digest"))
        assert list(rows) == [(running.pk, 2, "SN-1", DIGEST), (running.pk, 3, "", ""), (running.pk, 4, "SN-2", ""),
                              (done.pk, 2, "", "")]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
