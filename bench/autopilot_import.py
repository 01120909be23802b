"""Benchmark: import a generated 100,000-row Autopilot CSV through the same code as the console
(imports.create_import stores the upload in chunks, imports.run streams and writes it in batches)
and print rows per second and peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench python bench/autopilot_import.py [--rows N]

It migrates the database it is given and deletes the records it created when done. The target of
issue 5 is under 30 s for 100,000 rows, with memory that does not grow with the file.
"""
import argparse
import base64
import hashlib
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdmportal.settings")

HEADER = "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\r\n"


def write_csv(path, rows, hash_bytes):
    """Rows shaped like Windows' file; hashes of `hash_bytes` random-looking bytes (real ones ~3 KB)."""
    with open(path, "w", encoding="ascii", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            seed = hashlib.sha512(f"bench {i}".encode()).digest()
            hardware_hash = base64.b64encode((seed * (hash_bytes // len(seed) + 1))[:hash_bytes]).decode()
            out.write(f"BENCH{i:09d},00330-80000-00000-AA{i % 1000:03d},{hardware_hash},Group-{i % 20},"
                      f"user{i % 500}@example.com\r\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--hash-bytes", type=int, default=256,
                        help="decoded size of each generated hardware hash (Windows' are about 3,000)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the Python heap peak (slows the run down)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command

    from autopilot import imports
    from autopilot.models import AutopilotDevice, DeviceImport

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "devices.csv"
        write_csv(path, args.rows, args.hash_bytes)
        size = path.stat().st_size
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        with open(path, "rb") as handle:
            device_import = imports.create_import(File(handle, name="devices.csv"), actor=None)
        # Without REDIS_URL the queued task has already run in-process; with a broker, run it here
        # (the worker then finds it finished and does nothing).
        device_import = imports.run(device_import.pk)
        finished = time.perf_counter()
        heap_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        if device_import.status != DeviceImport.Status.DONE or device_import.created_count != args.rows:
            print(f"import did not complete: {device_import.status} {device_import.error} "
                  f"created {device_import.created_count} refused {device_import.failed_count}", file=sys.stderr)
            return 1
        total = finished - started
        print(f"rows: {args.rows}  file: {size / 1e6:.1f} MB  database: {django.db.connection.vendor}")
        print(f"upload stored and imported in: {total:.2f} s")
        print(f"rows/s: {args.rows / total:,.0f}")
        print(f"peak RSS: {rss_after / 1024:.1f} MB (before the import: {rss_before / 1024:.1f} MB)")
        if heap_peak is not None:
            print(f"peak Python heap during the import (tracemalloc): {heap_peak / 1e6:.1f} MB")
    finally:
        AutopilotDevice.objects.filter(source_import=device_import).delete()
        device_import.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
