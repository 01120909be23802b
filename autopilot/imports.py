"""Importing Autopilot devices from the CSV Windows produces (Get-WindowsAutopilotInfo, OEM files):

    Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User

Strict about data, forgiving about form. The upload is stored in chunks and a task reads it back as a
stream, validates each line, and writes in batches: one query per batch for the existing records, a
bulk insert and a bulk update, and the batch's report lines in the same transaction, so memory stays
flat for any size of file (one chunk of the file and one batch of rows; what earlier lines claimed is
read back from their report lines) and every row is written whole or not at all.

Rules, row by row:
- the serial number is required and must not be a firmware placeholder ("Default string",
  "To be filled by O.E.M.", "0"...): such serials are shared by many machines and would match the
  wrong one;
- the hardware hash, when present, is base64 and not already registered under another serial;
- the assigned user, when present, is an email address (the user's UPN);
- a serial or hardware hash seen earlier in the same file is refused (the first line wins);
- a serial already imported is updated: the cells that are filled replace the stored values, empty
  cells keep them; a row that changes nothing is reported "unchanged";
- a cell starting with quotes before = + - @ loses one quote: the export adds it so that spreadsheets
  do not read the cell as a formula (mdmportal/csv_cells.py), and the export imports back unchanged.
"""
import base64
import binascii
import csv
import functools
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from accounts.models import AuditEvent
from mdmportal import csv_cells

from .models import AutopilotDevice, DeviceImport, DeviceImportChunk, ImportRow

logger = logging.getLogger(__name__)

COLUMNS = ["Device Serial Number", "Windows Product ID", "Hardware Hash", "Group Tag", "Assigned User"]
FIELDS = ["serial_number", "product_id", "hardware_hash", "group_tag", "assigned_user"]
# Header cells compared without case, spaces, hyphens or underscores. "Order ID" is the old name of
# the group tag column, still written by older tools.
HEADER_ALIASES = {
    "deviceserialnumber": "serial_number",
    "windowsproductid": "product_id",
    "hardwarehash": "hardware_hash",
    "grouptag": "group_tag",
    "orderid": "group_tag",
    "assigneduser": "assigned_user",
}
# A hardware hash as the export writes it untouched: base64 (RFC 4648 §4) and nothing else.
BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
CHUNK_BYTES = 1024 * 1024
BATCH_SIZE = 1000
# The sweep: an import the broker never took is queued again after SWEEP_GRACE (the upload's own
# on-commit hand-off comes first); one queued but not started after SWEEP_LOST lost its task.
SWEEP_GRACE = timedelta(minutes=1)
SWEEP_LOST = timedelta(hours=1)
MAX_SERIAL = 64
MAX_PRODUCT_ID = 64
MAX_GROUP_TAG = 128
MAX_HASH_CHARS = 65536  # Windows' hashes are about 4,000 characters
PRODUCT_ID_RE = re.compile(r"^[A-Za-z0-9-]+$")

# Serial numbers firmware reports when the manufacturer left the field unset (SMBIOS defaults).
PLACEHOLDER_SERIALS = {
    "default string", "to be filled by o.e.m.", "to be filled by o.e.m", "to be filled by oem",
    "system serial number", "chassis serial number", "base board serial number", "serial number",
    "system product name", "not specified", "not applicable", "not available", "none", "n/a", "na", "null",
    "unknown", "invalid", "oem", "o.e.m.", "empty", "default", "123456789", "0123456789", "1234567890",
}


class FileError(ValueError):
    """The file as a whole cannot be read; the message says why."""


def is_placeholder_serial(serial):
    value = " ".join(serial.split()).lower()
    if value in PLACEHOLDER_SERIALS:
        return True
    significant = [c for c in value if c.isalnum()]
    # "0", "00000000", "FFFFFFFF", "xxxxxx", "......": one character repeated identifies nothing.
    return not significant or len(set(value.replace(" ", ""))) == 1


def serial_key(serial):
    return serial.strip().upper()


def hardware_hash_digest(value):
    """SHA-256 (hex) of the decoded hash, or None when it is not valid base64."""
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(raw).hexdigest() if raw else None


# --- the upload -------------------------------------------------------------------------------------

def create_import(uploaded_file, *, actor, ip=None):
    """Store the uploaded file (a Django File) in chunks and queue its import. Returns the DeviceImport."""
    with transaction.atomic():
        device_import = DeviceImport.objects.create(file_name=(uploaded_file.name or "devices.csv")[:255],
                                                    uploaded_by=actor)
        index, size, newlines, last = 0, 0, 0, b""
        buffer = bytearray()
        for piece in _pieces(uploaded_file):
            buffer += piece
            size += len(piece)
            newlines += piece.count(b"\n")
            last = piece[-1:] or last
            while len(buffer) >= CHUNK_BYTES:
                DeviceImportChunk.objects.create(device_import=device_import, index=index,
                                                 data=bytes(buffer[:CHUNK_BYTES]))
                del buffer[:CHUNK_BYTES]
                index += 1
        if buffer:
            DeviceImportChunk.objects.create(device_import=device_import, index=index, data=bytes(buffer))
        lines = newlines + (1 if last and last != b"\n" else 0)
        device_import.file_size, device_import.total_rows = size, max(lines - 1, 0)
        device_import.save(update_fields=["file_size", "total_rows"])
        AuditEvent.record(actor, "autopilot.import_uploaded", device_import, ip=ip,
                          detail={"file": device_import.file_name, "bytes": size})
        transaction.on_commit(lambda: queue(device_import.pk))
    return device_import


def _pieces(uploaded_file):
    """The file's bytes in pieces of at most CHUNK_BYTES, whatever its kind: an upload Django kept in
    memory (InMemoryUploadedFile) gives itself whole from chunks(), copied."""
    try:
        uploaded_file.seek(0)
    except (AttributeError, io.UnsupportedOperation):
        pass
    while piece := uploaded_file.read(CHUNK_BYTES):
        yield piece


def queue(import_id):
    """Hand the import to Celery. When the broker is down it stays queued, with no `enqueued_at`, and
    `sweep` queues it again."""
    from . import tasks

    try:
        tasks.run_import.delay(import_id)
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
        logger.warning("broker unavailable, Autopilot import %s stays queued for the sweep: %s", import_id, exc)
        return False
    DeviceImport.objects.filter(pk=import_id, enqueued_at__isnull=True).update(enqueued_at=timezone.now())
    return True


def sweep(now=None):
    """Queue again the imports still waiting for a worker: those the broker never took (queued while it
    was down), and those queued long ago whose task was lost with the broker's data. Returns how many.
    An import already picked up is never queued twice: a task that finds it started leaves it alone
    (see run's `only_if_queued`)."""
    from . import tasks

    now = now or timezone.now()
    never = Q(enqueued_at__isnull=True, created_at__lte=now - SWEEP_GRACE)
    lost = Q(enqueued_at__lte=now - SWEEP_LOST)
    stuck = list(DeviceImport.objects.filter(never | lost, status=DeviceImport.Status.QUEUED).values_list("pk", flat=True))
    queued = 0
    for pk in stuck:
        try:
            tasks.run_import.delay(pk, only_if_queued=True)
        except Exception as exc:  # the broker is still down: next sweep
            logger.warning("broker unavailable, %d Autopilot import(s) stay queued: %s", len(stuck) - queued, exc)
            break
        DeviceImport.objects.filter(pk=pk).update(enqueued_at=now)
        queued += 1
    if queued:
        logger.info("re-queued %d Autopilot import(s)", queued)
    return queued


# --- reading the stored file back as rows -----------------------------------------------------------

class ChunkStream(io.RawIOBase):
    """The stored chunks of an import as one byte stream, one chunk in memory at a time."""

    def __init__(self, device_import):
        super().__init__()
        self._import_id = device_import.pk
        self._index = 0
        self._current = b""
        self._offset = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while self._offset >= len(self._current):
            data = (DeviceImportChunk.objects.filter(device_import_id=self._import_id, index=self._index)
                    .values_list("data", flat=True).first())
            if data is None:
                return 0
            self._current, self._offset, self._index = bytes(data), 0, self._index + 1
        count = min(len(buffer), len(self._current) - self._offset)
        buffer[:count] = self._current[self._offset:self._offset + count]
        self._offset += count
        return count


def open_text(raw):
    """A text stream over raw bytes: UTF-8 (with or without BOM), or UTF-16 when it starts with its BOM
    (what PowerShell's Out-File writes by default)."""
    buffered = io.BufferedReader(raw, buffer_size=256 * 1024)
    start = buffered.peek(4)[:4]
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")


@dataclass
class Row:
    line: int
    serial: str = ""
    values: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    result: str | None = None
    device: AutopilotDevice | None = None
    changed: list = field(default_factory=list)
    # This line is the first of the file with its serial, with its hardware hash (see _check_in_file).
    claims_serial: bool = False
    claims_hash: bool = False

    @property
    def key(self):
        return serial_key(self.serial)


def read_rows(text):
    """(line, {field: cell}) for each data line; raises FileError for what makes the file unreadable."""
    first = ""
    lines = iter(text)
    try:
        for first in lines:
            if first.strip():
                break
        else:
            raise FileError("The file is empty.")
    except UnicodeDecodeError:
        raise FileError("The file is not UTF-8 or UTF-16 text: save it as CSV (UTF-8).") from None
    delimiter = ";" if ";" in first and "," not in first else ","

    def all_lines():
        yield first
        yield from lines

    sample_reader = csv.reader(all_lines(), delimiter=delimiter, skipinitialspace=True)
    try:
        header = next(sample_reader)
        columns = _columns(header)
        for cells in sample_reader:
            if not any(cell.strip() for cell in cells):
                continue
            yield sample_reader.line_num, _cells(cells, columns, len(header))
    except csv.Error as exc:
        raise FileError(f"Line {sample_reader.line_num} cannot be read: {exc}.") from None
    except UnicodeDecodeError:
        raise FileError(f"After line {sample_reader.line_num} the file is not UTF-8 text: save it as CSV "
                        "(UTF-8).") from None


def _columns(header):
    columns = {}
    for position, cell in enumerate(header):
        name = HEADER_ALIASES.get(re.sub(r"[\s_\-]", "", cell).lower())
        if name is None:
            continue
        if name in columns:
            raise FileError(f"The header names the column “{cell.strip()}” twice.")
        columns[name] = position
    if "serial_number" not in columns:
        found = ", ".join(cell.strip() for cell in header if cell.strip()) or "nothing"
        raise FileError("The first line must be the header, with at least “Device Serial Number” "
                        f"(columns: {', '.join(COLUMNS)}). Found: {found}.")
    return columns


def _cells(cells, columns, width):
    extra = [cell for cell in cells[width:] if cell.strip()]
    # csv_cells.restore: a cell our own export neutralised ("'=...") comes back as it was.
    values = {name: (csv_cells.restore(cells[position].strip()) if position < len(cells) else "")
              for name, position in columns.items()}
    if extra:
        values["_error"] = f"this line has {len(cells)} cells but the header has {width} columns"
    return values


@functools.lru_cache(maxsize=4096)
def _is_email(value):
    """Django's email check, remembered: a file names the same few hundred users on many lines."""
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def validate(line, cells):
    """A Row with normalised values or the errors of this line on its own."""
    row = Row(line=line, serial=cells.get("serial_number", ""))
    if cells.get("_error"):
        row.errors.append(cells["_error"])
    if any("\x00" in value for value in cells.values()):
        # PostgreSQL refuses NUL in text: refuse the line, and keep its report line writable.
        row.errors.append("this line contains NUL characters")
        row.serial = row.serial.replace("\x00", "")
        return row
    serial = row.serial
    if not serial:
        row.errors.append("the serial number is missing")
    elif max(len(serial), len(serial_key(serial))) > MAX_SERIAL:
        # In capitals too: "ß" becomes "SS", and the record is looked up by its capitals (serial_key).
        row.errors.append(f"the serial number is longer than {MAX_SERIAL} characters")
    elif not serial.isprintable():
        row.errors.append("the serial number contains control characters")
    elif is_placeholder_serial(serial):
        row.errors.append(f"“{serial}” is a placeholder serial number set by the firmware, shared by many "
                          "machines: ask the manufacturer for the real one")
    product_id = cells.get("product_id", "")
    if product_id and (len(product_id) > MAX_PRODUCT_ID or not PRODUCT_ID_RE.match(product_id)):
        row.errors.append("the Windows Product ID is not letters, digits and hyphens of at most 64 characters")
    hardware_hash = "".join(cells.get("hardware_hash", "").split())
    digest = ""
    if hardware_hash:
        if len(hardware_hash) > MAX_HASH_CHARS:
            row.errors.append("the hardware hash is too long to be one")
        else:
            digest = hardware_hash_digest(hardware_hash)
            if digest is None:
                row.errors.append("the hardware hash is not valid base64")
    group_tag = cells.get("group_tag", "")
    if len(group_tag) > MAX_GROUP_TAG:
        row.errors.append(f"the group tag is longer than {MAX_GROUP_TAG} characters")
    assigned_user = cells.get("assigned_user", "")
    if assigned_user and not _is_email(assigned_user):
        row.errors.append(f"the assigned user “{assigned_user}” is not an email address")
    row.values = {"serial_number": serial, "product_id": product_id, "hardware_hash": hardware_hash,
                  "hardware_hash_digest": digest or "", "group_tag": group_tag, "assigned_user": assigned_user}
    return row


# --- the import task --------------------------------------------------------------------------------

UPDATABLE = ["product_id", "hardware_hash", "hardware_hash_digest", "group_tag", "assigned_user"]


class Importer:
    """Runs one DeviceImport. Lines up to `resume_after` were written by an earlier, interrupted run:
    they are read again, to reach the next line, but neither checked nor written again (their report
    lines hold what they claimed for the in-file duplicate check)."""

    def __init__(self, device_import, *, batch_size=BATCH_SIZE):
        self.device_import = device_import
        self.batch_size = batch_size
        self.resume_after = device_import.rows.aggregate(last=Max("line"))["last"] or 0

    def run(self, text):
        batch, count = [], 0
        for line, cells in read_rows(text):
            count += 1
            if line <= self.resume_after:
                continue
            batch.append(validate(line, cells))
            if len(batch) >= self.batch_size:
                self._check_in_file(batch)
                self.write(batch)
                batch = []
        if batch:
            self._check_in_file(batch)
            self.write(batch)
        if not count:
            raise FileError("The file has a header but no devices.")

    def _check_in_file(self, batch):
        """Refuse the lines whose serial or hardware hash an earlier line of the file claimed: the
        first line wins. A line that passes claims its serial and its hash, whatever its write makes
        of it. The claims of earlier batches are in their report lines (ImportRow.serial_key and
        hardware_hash_digest, unique per import), read back for this batch's values in one query; this
        batch's own are added as it goes. So the check holds one batch in memory, not an entry per
        line of the file (about 250 bytes each), and a resumed import finds the claims of the lines
        written before it stopped."""
        candidates = [row for row in batch if not row.errors]
        keys = {row.key for row in candidates}
        digests = {row.values["hardware_hash_digest"] for row in candidates} - {""}
        serial_lines, hash_lines = _claimed_lines(self.device_import.pk, keys, digests) if keys else ({}, {})
        for row in candidates:
            first = serial_lines.get(row.key)
            if first is not None:
                row.errors.append(f"serial number already on line {first} of this file")
                continue
            digest = row.values["hardware_hash_digest"]
            if digest:
                first = hash_lines.get(digest)
                if first is not None:
                    row.errors.append(f"hardware hash already on line {first} of this file")
                    continue
                hash_lines[digest] = row.line
                row.claims_hash = True
            serial_lines[row.key] = row.line
            row.claims_serial = True

    def write(self, batch):
        """Write one batch: every valid row's record and every row's report line, all or none."""
        try:
            with transaction.atomic():
                _relax_commit_durability()
                self._write(batch, per_row=False)
        except IntegrityError:
            # Someone else wrote one of these serials or hashes since we looked: go row by row.
            for row in batch:
                row.result = row.device = None
            with transaction.atomic():
                self._write(batch, per_row=True)

    def _write(self, batch, *, per_row):
        valid = [row for row in batch if not row.errors]
        existing = {d.serial_key: d for d in AutopilotDevice.objects.filter(serial_key__in=[r.key for r in valid])}
        digests = [r.values["hardware_hash_digest"] for r in valid if r.values["hardware_hash_digest"]]
        hash_owners = dict(AutopilotDevice.objects.filter(hardware_hash_digest__in=digests)
                           .values_list("hardware_hash_digest", "serial_number"))
        now = timezone.now()
        new, changed = [], []
        for row in batch:
            row.result, row.device = ImportRow.Result.FAILED, None
            if row.errors:
                continue
            digest = row.values["hardware_hash_digest"]
            owner = hash_owners.get(digest) if digest else None
            if owner is not None and serial_key(owner) != row.key:
                row.errors.append(f"this hardware hash is already registered for serial number {owner}")
                continue
            record = existing.get(row.key)
            if record is None:
                row.device = AutopilotDevice(serial_key=row.key, source_import_id=self.device_import.pk,
                                             created_at=now, updated_at=now, **row.values)
                row.result = ImportRow.Result.CREATED
                new.append(row)
            else:
                row.device = record
                updates = {name: row.values[name] for name in UPDATABLE
                           if row.values[name] and getattr(record, name) != row.values[name]}
                if updates:
                    for name, value in updates.items():
                        setattr(record, name, value)
                    record.updated_at = now
                    row.result = ImportRow.Result.UPDATED
                    row.changed = sorted(k for k in updates if k != "hardware_hash_digest")
                    changed.append(row)
                else:
                    row.result = ImportRow.Result.UNCHANGED
        if per_row:
            self._save_one_by_one(new, changed)
        else:
            _insert(AutopilotDevice, [row.device for row in new], self.batch_size)
            if new and new[0].device.pk is None:
                # COPY returns no ids: read them back for the report lines (one query per batch).
                ids = dict(AutopilotDevice.objects.filter(serial_key__in=[row.key for row in new])
                           .values_list("serial_key", "pk"))
                for row in new:
                    row.device.pk = ids[row.key]
                    row.device._state.adding = False
            AutopilotDevice.objects.bulk_update([row.device for row in changed], UPDATABLE + ["updated_at"],
                                                batch_size=self.batch_size)
        self._report(batch)

    def _save_one_by_one(self, new, changed):
        for row in new + changed:
            try:
                with transaction.atomic():
                    row.device.save()
            except IntegrityError:
                row.result, row.device = ImportRow.Result.FAILED, None
                row.errors.append("another import or change wrote this serial number or hardware hash at the "
                                  "same time: upload the file again")

    def _report(self, batch):
        counts = dict.fromkeys(ImportRow.Result.values, 0)
        report = []
        for row in batch:
            counts[row.result] += 1
            if row.result == ImportRow.Result.FAILED:
                message = "; ".join(row.errors)
            elif row.result == ImportRow.Result.UPDATED:
                message = "updated: " + ", ".join(name.replace("_", " ") for name in row.changed)
            else:
                message = ""
            report.append(ImportRow(device_import_id=self.device_import.pk, line=row.line,
                                    serial_number=row.serial[:255], result=row.result, message=message,
                                    device_id=row.device.pk if row.device else None,
                                    serial_key=row.key if row.claims_serial else "",
                                    hardware_hash_digest=row.values["hardware_hash_digest"] if row.claims_hash else ""))
        _insert(ImportRow, report, self.batch_size)
        DeviceImport.objects.filter(pk=self.device_import.pk).update(
            processed_rows=F("processed_rows") + len(batch),
            created_count=F("created_count") + counts[ImportRow.Result.CREATED],
            updated_count=F("updated_count") + counts[ImportRow.Result.UPDATED],
            unchanged_count=F("unchanged_count") + counts[ImportRow.Result.UNCHANGED],
            failed_count=F("failed_count") + counts[ImportRow.Result.FAILED],
        )


def _insert(model, objects, batch_size):
    """Insert new rows (their ids are not set). On PostgreSQL with COPY: for 100,000-row files it takes
    about half the time of bulk_create's INSERT (bench/autopilot_import.py), which builds and binds one
    huge statement per batch. Values are the ones Django would write (each field's get_db_prep_save);
    a unique violation raises IntegrityError as an INSERT would."""
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=batch_size)
        return
    if not objects:
        return
    database = connections[DEFAULT_DB_ALIAS]  # not the `connection` proxy: one lookup, not one per value
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    table = database.ops.quote_name(model._meta.db_table)
    columns = ", ".join(database.ops.quote_name(f.column) for f in fields)
    with database.cursor() as cursor, database.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), database) for f in fields])


def _claimed_lines(import_id, keys, digests):
    """({serial key: line}, {digest: line}) of the lines of the import that claimed these values."""
    if connection.vendor == "postgresql":
        # One index probe per value (the constraints' unique indexes), whatever the table's statistics:
        # filtered by `= ANY(values)`, on a table grown since it was last analysed, PostgreSQL read
        # every report line of the import for each batch instead (O(lines²)). LIMIT keeps each
        # LATERAL subquery from being flattened into a join it could hash. `column <> ''` is the
        # indexes' condition.
        ops = connection.ops
        table, line, owner = (ops.quote_name(name) for name in (ImportRow._meta.db_table, "line", "device_import_id"))
        selects = []
        for kind, column in (("s", "serial_key"), ("h", "hardware_hash_digest")):
            column = ops.quote_name(column)
            selects.append(f"SELECT '{kind}', v.value, r.{line} FROM unnest(%s::varchar[]) AS v(value) CROSS JOIN "
                           f"LATERAL (SELECT {line} FROM {table} WHERE {owner} = %s AND {column} = v.value "
                           f"AND {column} <> '' LIMIT 1) AS r")
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(selects), [list(keys), import_id, list(digests), import_id])
            claims = cursor.fetchall()
    else:
        claimed = (ImportRow.objects.filter(device_import_id=import_id).order_by()
                   .filter((Q(serial_key__in=keys) & ~Q(serial_key=""))
                           | (Q(hardware_hash_digest__in=digests) & ~Q(hardware_hash_digest=""))))
        claims = []
        for line, key, digest in claimed.values_list("line", "serial_key", "hardware_hash_digest"):
            if key in keys:
                claims.append(("s", key, line))
            if digest in digests:
                claims.append(("h", digest, line))
    serial_lines, hash_lines = {}, {}
    for kind, value, line in claims:
        (serial_lines if kind == "s" else hash_lines)[value] = line
    return serial_lines, hash_lines


def _relax_commit_durability():
    """On PostgreSQL, let this batch's commit return before its WAL reaches the disk. A crash can lose
    the last batches, records and report lines together, and the resumed task writes them again."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def run(import_id, *, batch_size=BATCH_SIZE, only_if_queued=False):
    """Run (or resume) an import; returns the DeviceImport, finished. With `only_if_queued` (the sweep's
    tasks) an import another task started is left to it."""
    with transaction.atomic():
        device_import = DeviceImport.objects.select_for_update().get(pk=import_id)
        if device_import.is_finished:
            return device_import
        if only_if_queued and device_import.status != DeviceImport.Status.QUEUED:
            return device_import
        device_import.start()
    error = ""
    try:
        with open_text(ChunkStream(device_import)) as text:
            Importer(device_import, batch_size=batch_size).run(text)
    except FileError as exc:
        error = str(exc)
    device_import.refresh_from_db()
    device_import.finish(error=error)
    if error and device_import.processed_rows:
        device_import.error = f"{error} The {device_import.processed_rows} lines before it were processed (see the report)."
        device_import.save(update_fields=["error"])
    AuditEvent.record(device_import.uploaded_by, "autopilot.import_finished", device_import, detail={
        "status": device_import.status, "created": device_import.created_count,
        "updated": device_import.updated_count, "unchanged": device_import.unchanged_count,
        "refused": device_import.failed_count, "error": device_import.error,
    })
    return device_import


# --- export -----------------------------------------------------------------------------------------

class _Echo:
    def write(self, value):
        return value


def export_lines(queryset):
    """The records as CSV lines in Windows' format (header first), streamed from the database. Cells a
    spreadsheet would read as a formula are neutralised (mdmportal/csv_cells.py); `_cells` undoes it
    on import, so an export imports back unchanged. A strict base64 hardware hash is written as it is,
    even when it starts with "+": Microsoft's importer reads the column as base64, and base64 has no
    parentheses, quotes, "!" or "|", so it cannot call a function or reach outside the sheet."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(COLUMNS)
    for record in queryset.select_related(None).only(*FIELDS).order_by("serial_key").iterator(chunk_size=2000):
        hardware_hash = record.hardware_hash
        if not BASE64_RE.fullmatch(hardware_hash):
            hardware_hash = csv_cells.neutralise(hardware_hash)
        yield writer.writerow([csv_cells.neutralise(record.serial_number), csv_cells.neutralise(record.product_id),
                               hardware_hash, csv_cells.neutralise(record.group_tag),
                               csv_cells.neutralise(record.assigned_user)])
