"""Report lines record what their line claimed for the in-file duplicate check (the serial key and the
hardware hash's digest of the first line of a file with them), which the import reads back instead of
keeping every line's in memory. Imports still running when this is applied get the claims of the lines
they already wrote, read from the records those lines point at, so that when they resume an earlier
line's serial or hash is still refused."""
from django.db import migrations, models


def claim_written_lines(apps, schema_editor):
    DeviceImport = apps.get_model("autopilot", "DeviceImport")
    ImportRow = apps.get_model("autopilot", "ImportRow")
    for import_id in DeviceImport.objects.filter(status__in=["queued", "running"]).values_list("pk", flat=True):
        serials, hashes, claimed = set(), set(), []
        rows = (ImportRow.objects.filter(device_import_id=import_id, device__isnull=False)
                .select_related("device").order_by("line"))
        for row in rows.iterator(chunk_size=2000):
            key, digest = row.device.serial_key, row.device.hardware_hash_digest
            row.serial_key = key if key not in serials else ""
            row.hardware_hash_digest = digest if digest and digest not in hashes else ""
            serials.add(key)
            hashes.add(digest)
            claimed.append(row)
        ImportRow.objects.bulk_update(claimed, ["serial_key", "hardware_hash_digest"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('autopilot', '0004_tenant_in_entra_settings'),
    ]

    operations = [
        migrations.AddField(
            model_name='importrow',
            name='hardware_hash_digest',
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name='hardware hash digest'),
        ),
        migrations.AddField(
            model_name='importrow',
            name='serial_key',
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name='serial key'),
        ),
        migrations.AddConstraint(
            model_name='importrow',
            constraint=models.UniqueConstraint(condition=models.Q(('serial_key', ''), _negated=True), fields=('device_import', 'serial_key'), name='import_row_serial_claimed_once'),
        ),
        migrations.AddConstraint(
            model_name='importrow',
            constraint=models.UniqueConstraint(condition=models.Q(('hardware_hash_digest', ''), _negated=True), fields=('device_import', 'hardware_hash_digest'), name='import_row_hash_claimed_once'),
        ),
        migrations.RunPython(claim_written_lines, migrations.RunPython.noop),
    ]
