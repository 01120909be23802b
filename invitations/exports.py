"""CSV exports of the Users list and the Audit log (console and API share them).

Every cell goes through mdmportal.csv_cells.neutralise: a display name typed as =HYPERLINK(...) or an
audit label starting with @ must stay text in the administrator's spreadsheet (OWASP, "CSV
Injection"). The users file has exactly the user importer's columns (user_import.COLUMNS; the
importer refuses unknown columns and takes the neutralising quote off again), so an export imports
back unchanged. Rows are streamed from the database in chunks (QuerySet.iterator), so exporting
100,000 audit events never holds them all in memory. Each export is itself audited.
"""
import csv
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from accounts.models import AuditEvent
from mdmportal.csv_cells import neutralise

from .user_import import COLUMNS as USER_COLUMNS

# Column names, not labels: scripts read these files, whatever the administrator's language.
AUDIT_COLUMNS = ["time", "actor", "action", "object_type", "object_id", "object", "address", "count",
                 "last_time", "detail"]
AUDIT_FIELDS = ["created_at", "actor_label", "action", "target_type", "target_id", "target_label", "ip", "count",
                "last_at", "detail"]
CHUNK_SIZE = 2000
# Query parameters that choose a page or a format, not rows: left out of the audited filter.
NOT_FILTERS = {"p", "page", "format", "e"}


class _Echo:
    """csv.writer's file: each row is given back as a string, to be yielded."""

    def write(self, value):
        return value


def _lines(header, rows):
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(header)
    for cells in rows:
        yield writer.writerow([neutralise(cell) for cell in cells])


def user_lines(queryset):
    """The users as the importer reads them (header first), in the queryset's order."""
    rows = queryset.select_related(None).prefetch_related(None).values_list(*USER_COLUMNS)
    return _lines(USER_COLUMNS, rows.iterator(chunk_size=CHUNK_SIZE))


def audit_lines(queryset):
    """The events (header first), in the queryset's order; time in ISO 8601 (UTC), detail as JSON."""
    rows = queryset.select_related(None).prefetch_related(None).values_list(*AUDIT_FIELDS)
    return _lines(AUDIT_COLUMNS, (
        (created_at.isoformat(), actor, action, target_type, target_id, target_label, ip or "", count,
         last_at.isoformat() if last_at else "",
         json.dumps(detail, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=True))
        for created_at, actor, action, target_type, target_id, target_label, ip, count, last_at, detail
        in rows.iterator(chunk_size=CHUNK_SIZE)))


def csv_response(lines, filename):
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def filter_of(query):
    """The request's query parameters (a QueryDict) that select rows, for the audit log."""
    return {key: values[0] if len(values) == 1 else values
            for key, values in query.lists() if key not in NOT_FILTERS}


def export_users(queryset, *, actor, ip, via, detail=None):
    """The CSV response of `queryset`'s users, audited as users.exported with the row count."""
    rows = queryset.count()
    AuditEvent.record(actor, "users.exported", ip=ip, detail={"rows": rows, **(detail or {}), "via": via})
    return csv_response(user_lines(queryset), "users.csv")


def export_audit(queryset, *, actor, ip, via, detail=None):
    """The CSV response of `queryset`'s events, audited as audit.exported with the row count. The
    file holds the events there were when it was asked for, not its own audit.exported event."""
    rows = queryset.count()
    event = AuditEvent.record(actor, "audit.exported", ip=ip, detail={"rows": rows, **(detail or {}), "via": via})
    return csv_response(audit_lines(queryset.exclude(pk=event.pk)), "audit-log.csv")
