"""Adding many users at once: from a CSV upload (Users → Import from CSV) or from the lines typed in
the getting-started wizard.

Every row is validated before anything is written; one bad row and nothing is created. The caller
gets a Report holding each row's result, to show row by row.
"""
import csv
import io
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import AuditEvent, User
from mdmportal import csv_cells

from . import sending

COLUMNS = ["email", "display_name", "language", "mdm_username", "device_limit"]
WIZARD_COLUMNS = ["email", "display_name", "language"]
MAX_ROWS = 10000
MAX_DEVICE_LIMIT = 32767  # the PositiveSmallIntegerField's range
LANGUAGES = {code for code, _label in User.Language.choices}


class FileError(ValueError):
    """The file as a whole cannot be read (encoding, header, size): no row-by-row report possible."""


@dataclass
class Row:
    line: int
    raw: dict
    parse_errors: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    user: User | None = None

    @property
    def email(self):
        return self.raw.get("email", "")


@dataclass
class Report:
    rows: list
    created: bool = False
    invited: bool = False

    @property
    def failed_rows(self):
        return [row for row in self.rows if row.errors]

    @property
    def ok(self):
        return bool(self.rows) and not self.failed_rows


def read_csv(data):
    """Rows of an uploaded CSV file (bytes). The header line is required; a UTF-8 BOM, quoted
    fields, CRLF line ends and Excel's semicolon separator are accepted. A cell the users export
    neutralised against spreadsheet formulas ("'=..." — mdmportal/csv_cells.py) loses that quote
    again, so an export imports back unchanged."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileError(_("The file is not UTF-8 text. In Excel, save it as “CSV UTF-8”.")) from None
    if "\x00" in text:  # no text column can hold it (PostgreSQL refuses NUL): a binary file
        raise FileError(_("The file contains NUL characters: it is not a CSV text file."))
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = _read_header(reader)
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise FileError(_("The file has more than %(max)d users; split it.") % {"max": MAX_ROWS})
            rows.append(_row(reader.line_num, header, cells, restore=True))
    except csv.Error as exc:
        raise FileError(_("Line %(line)d cannot be read: %(error)s") % {"line": reader.line_num, "error": exc}) from None
    if not rows:
        raise FileError(_("The file has a header but no users."))
    return rows


def read_lines(text):
    """Rows typed one per line as `email[, display name[, language]]` (the wizard's first users)."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = next(csv.reader([line], skipinitialspace=True))
        rows.append(_row(number, WIZARD_COLUMNS, cells))
    return rows


def validate(rows):
    """Check every row against the others and the database. Returns a Report; writes nothing."""
    emails = [row.email.strip().lower() for row in rows]
    existing_emails = set(User.objects.filter(email__in=[e for e in emails if e]).values_list("email", flat=True))
    existing_names = {n.lower() for n in User.objects.filter(mdm_username__isnull=False)
                      .values_list("mdm_username", flat=True)}
    seen_emails, seen_names = {}, {}
    for row in rows:
        row.errors, row.values = list(row.parse_errors), {}
        _validate_row(row)
        email, name = row.values.get("email"), row.values.get("mdm_username")
        if email in existing_emails:
            row.errors.append(_("a user with this email already exists"))
        elif email and email in seen_emails:
            row.errors.append(_("this email is already on line %(line)d") % {"line": seen_emails[email]})
        if name and name.lower() in existing_names:
            row.errors.append(_("this MDM username is already taken"))
        elif name and name.lower() in seen_names:
            row.errors.append(_("this MDM username is already on line %(line)d") % {"line": seen_names[name.lower()]})
        if email:
            seen_emails.setdefault(email, row.line)
        if name:
            seen_names.setdefault(name.lower(), row.line)
    return Report(rows)


def import_users(rows, *, actor, ip=None, send_invitations=False, source="csv import"):
    """Validate all rows, then create every user (and invite them if asked) in one transaction, or
    none of them. Returns the Report."""
    report = validate(rows)
    if not report.ok:
        return report
    try:
        with transaction.atomic():
            _create(report, actor, ip, source)
            if send_invitations:
                sending.invite([row.user for row in report.rows], actor=actor, ip=ip)
    except IntegrityError:
        # Someone added one of these users between our check and our insert: report it per row.
        for row in report.rows:
            row.user = None
        return validate(rows)
    report.created, report.invited = True, send_invitations
    return report


def _read_header(reader):
    for cells in reader:
        if any(cell.strip() for cell in cells):
            break
    else:
        raise FileError(_("The file is empty."))
    header = [cell.strip().lower().replace(" ", "_") for cell in cells]
    if "email" not in header:
        raise FileError(_("The first line must be the header, with at least an “email” column: %(columns)s.")
                        % {"columns": ", ".join(COLUMNS)})
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise FileError(ngettext("Unknown column %(unknown)s; the columns are %(columns)s.",
                                 "Unknown columns %(unknown)s; the columns are %(columns)s.", len(unknown))
                        % {"unknown": ", ".join(f"“{name}”" for name in unknown), "columns": ", ".join(COLUMNS)})
    if len(set(header)) != len(header):
        raise FileError(_("A column appears twice in the header."))
    return header


def _row(line, header, cells, restore=False):
    cells = [cell.strip() for cell in cells]
    if restore:
        cells = [csv_cells.restore(cell) for cell in cells]
    row = Row(line=line, raw=dict(zip(header, cells)))
    if len(cells) > len(header):
        row.parse_errors.append(_("%(found)d values but only %(expected)d columns") % {"found": len(cells), "expected": len(header)})
    return row


def _validate_row(row):
    raw, values = row.raw, row.values
    email = raw.get("email", "").lower()
    try:
        validate_email(email)
        values["email"] = email
    except ValidationError:
        row.errors.append(_("“%(email)s” is not a valid email") % {"email": raw.get("email", "")} if email
                          else _("the email is missing"))
    display_name = raw.get("display_name", "")
    if len(display_name) > 150:
        row.errors.append(_("the display name is longer than 150 characters"))
    values["display_name"] = display_name
    language = raw.get("language", "").lower() or User.Language.ENGLISH
    if language in LANGUAGES:
        values["language"] = language
    else:
        row.errors.append(_("unknown language “%(language)s” (use fr or en)") % {"language": raw["language"]})
    mdm_username = raw.get("mdm_username", "")
    if len(mdm_username) > 150:
        row.errors.append(_("the MDM username is longer than 150 characters"))
    values["mdm_username"] = mdm_username or None
    values["device_limit"] = _device_limit(row, raw.get("device_limit", ""))


def _device_limit(row, value):
    if not value:
        return User._meta.get_field("device_limit").default
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_DEVICE_LIMIT:
        row.errors.append(_("device limit “%(value)s” is not a whole number from 0 to %(max)d")
                          % {"value": value, "max": MAX_DEVICE_LIMIT})
        return None
    return int(value)


def _create(report, actor, ip, source):
    for row in report.rows:
        row.user = User.objects.create_user(**row.values)
        AuditEvent.record(actor, "user.added", row.user, ip=ip, detail={"source": source})
