"""Room on each page of the device table for the row's next version. Every OMA-DM message updates
its device's row (last_seen_at, the nonce, what the device reported); when the page holding the row
has room, PostgreSQL writes the new version there without touching the table's indexes, as none of
the updated columns is indexed (a heap-only tuple: PostgreSQL documentation, "Heap-Only Tuples").
On a full page the update inserts into every index of the table instead, nine of them trigram GIN
indexes (0002). A fill factor of 80 leaves a fifth of each page free for that. It applies to pages
written from now on (VACUUM FULL or pg_repack rewrites the existing ones). PostgreSQL only."""
from django.db import migrations


def set_fillfactor(value):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(apps.get_model("enrollment", "Device")._meta.db_table)
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(value)})")
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0002_device_trigram_search"),
    ]

    operations = [
        migrations.RunPython(set_fillfactor(80), set_fillfactor(100)),
    ]
