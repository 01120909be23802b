"""The OMA-DM endpoint's reads and writes of every message, as explicit SQL (management/omadm.py).

A check-in is a few index lookups and one transaction: authenticate the certificate (the device and
the active issuing CA), read the session and the commands, record what the device answered and what
we sent. Through the ORM each of those statements was built and compiled again at every message, and
every row went through the compiler's per-query converter lookup; in profiles that cost more CPU
than the database spent running them. Here each statement is written once, as SQL with parameters:

- On PostgreSQL (psycopg 3) the statements are executed with server-side binding and `prepare=True`:
  the server parses and plans each once per connection, then only binds and executes it (PostgreSQL
  documentation, "PREPARE"; psycopg, "Prepared statements"). Connections are kept (CONN_MAX_AGE), so a
  worker prepares its statements once. They go through Django's documented execute wrappers
  (connection.execute_wrapper), and are logged in connection.queries when queries are logged, like
  any other statement.
- On SQLite the same SQL runs through Django's cursor, without the row locks SQLite does not have
  (it serialises writers itself).
- Rows become model instances through Model.from_db (the documented hook for loading from the
  database), the columns' converters looked up once per process and database instead of per query.
- The transaction's first statement goes with its BEGIN in one round trip (psycopg's pipeline mode),
  instead of psycopg's BEGIN on its own first.
- The writes of a message go in one statement on PostgreSQL: a data-modifying WITH (PostgreSQL
  documentation, "Data-Modifying Statements in WITH") that saves the session (INSERT or UPDATE),
  marks the commands sent in the reply, closes the commands the device answered and updates the
  device's row, in one round trip; on SQLite the same writes one after the other.

Every statement runs inside the message's transaction (omadm.serve), after the device's row lock.
"""
import contextlib
import functools
import json
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connections, router

from enrollment.models import Device
from mdmportal.rows import Columns, preparer, statement
from pki.models import CertificateAuthority

from .models import (ConfigurationGroup, ConfigurationRevision, DeviceCommand, DeviceReconciliation,
                     DeviceSettingState, GroupSetting, ManagementSession)

try:  # psycopg 3: server-side binding and prepared statements on PostgreSQL
    import psycopg
except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite needs none
    psycopg = None
    _PIPELINE, _IDLE = False, None
else:
    from psycopg.types.datetime import TimestamptzLoader

    _PIPELINE, _IDLE = psycopg.Pipeline.is_supported(), psycopg.pq.TransactionStatus.IDLE


# --- running statements ----------------------------------------------------------------------------

def _connection(model=Device):
    return connections[router.db_for_write(model)]


def _postgresql(connection):
    return connection.vendor == "postgresql" and psycopg is not None


def execute(connection, sql, params=()):
    """Run `sql` (with %s placeholders) on `connection`; returns the cursor to fetch from. Prepared on
    PostgreSQL; through Django's execute wrappers and query log either way."""
    if not _postgresql(connection):
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    cursor = psycopg.Cursor(raw)
    # psycopg's own timestamptz loader (its C implementation with psycopg[binary]) instead of the Python
    # subclass Django registers on the connection to set the tzinfo: both give the instant in the
    # session's time zone, which Django sets to its connection's (psycopg, "Date/time types adaptation"),
    # and a check-in's rows carry some thirty of them. On this cursor only.
    cursor.adapters.register_loader("timestamptz", TimestamptzLoader)

    prepare = settings.DATABASE_PREPARED_STATEMENTS

    def run(sql, params, many, context):
        with connection.wrap_database_errors, _preparing(raw, prepare):
            if _PIPELINE and not raw.autocommit and raw.info.transaction_status == _IDLE:
                # The transaction's first statement: psycopg would send BEGIN alone and wait for it;
                # in pipeline mode BEGIN and the statement go in one round trip.
                with raw.pipeline():
                    cursor.execute(sql, params, prepare=prepare)
                return cursor
            return cursor.execute(sql, params, prepare=prepare)

    executor = run
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    started = time.monotonic()
    executor(sql, params, False, {"connection": connection, "cursor": cursor})
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return cursor


# psycopg prepares a statement executed with prepare=True only while the connection's
# prepare_threshold is not None; above any count, nothing else it runs meanwhile is prepared.
_ONLY_WHEN_ASKED = 2**62


@contextlib.contextmanager
def _preparing(raw, prepare):
    """The connection's prepare_threshold lifted for one of our statements (settings.py,
    DATABASE_PREPARED_STATEMENTS): psycopg prepares it and counts no other text."""
    if not prepare:
        yield
        return
    threshold = raw.prepare_threshold
    raw.prepare_threshold = _ONLY_WHEN_ASKED
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def _q(connection, name):
    return connection.ops.quote_name(name)


def _dt(connection, value):
    """A datetime parameter as the backend takes it (an aware datetime on PostgreSQL, text on SQLite)."""
    return connection.ops.adapt_datetimefield_value(value)


def _lock(connection, of=None):
    if not connection.features.has_select_for_update:
        return ""
    return " FOR UPDATE" + (f" OF {of}" if of and connection.features.has_select_for_update_of else "")


def _skip_locked(connection):
    return " SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""


# --- rows to model instances ------------------------------------------------------------------------

DEVICE = Columns(Device, "d")
SESSION = Columns(ManagementSession, "s")
COMMAND = Columns(DeviceCommand, "c")
STATE = Columns(DeviceSettingState, "st")
SETTING = Columns(GroupSetting, "gs")
GROUP = Columns(ConfigurationGroup, "g")


def _table(model):
    return model._meta.db_table


# --- reads --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    """A value read with the device at a session's first message: `name` is the attribute it is set
    as, `sql(connection, device_id_column)` its SQL (an EXISTS or a scalar subquery of an index lookup
    on the device), `value` what makes the attribute of the column (bool: an EXISTS read as True or
    False on both databases)."""
    name: str
    sql: object
    value: object = bool


def device_by_serial(serial, *, lock=True, flags=(), params=()):
    """The device holding the certificate of `serial` (current or previous), with the active issuing
    CA's PEM as `issuing_ca_pem` and each of `flags` as an attribute; None when no device has it.
    `lock`: its row is locked FOR UPDATE for the rest of the transaction. `params` go with the flags'
    SQL, in order."""
    return _device(_connection(), "serial", [serial, serial], lock, tuple(flags), params)


def enrolled_device(device_id, *, lock=True, flags=(), params=()):
    """The enrolled device of that DeviceID (compared case-insensitively), as device_by_serial reads it:
    how a message without a client certificate names its device."""
    return _device(_connection(), "device_id", [Device.Status.ENROLLED, device_id], lock, tuple(flags), params)


@statement
def _device_sql(connection, by, lock, flags):
    q = functools.partial(_q, connection)
    where = {
        "serial": f"d.{q('certificate_serial')} = %s OR d.{q('previous_certificate_serial')} = %s",
        "device_id": f"d.{q('status')} = %s AND UPPER(d.{q('device_id')}) = UPPER(%s)",
    }[by]
    extra = "".join(f", ({flag.sql(connection, 'd.' + q('id'))})" for flag in flags)
    return (f"SELECT {DEVICE.select(connection)}, "
            f"(SELECT ca.{q('certificate_pem')} FROM {q(_table(CertificateAuthority))} ca "
            f"WHERE ca.{q('active')} AND ca.{q('kind')} = %s LIMIT 1){extra} "
            f"FROM {q(_table(Device))} d WHERE {where} LIMIT 1{_lock(connection, 'd') if lock else ''}")


def _device(connection, by, where_params, lock, flags, params):
    sql = _device_sql(connection, by, lock, flags)
    params = [_dt(connection, value) if isinstance(value, datetime) else value for value in params]
    row = execute(connection, sql, [CertificateAuthority.Kind.ISSUING, *params, *where_params]).fetchone()
    if row is None:
        return None
    device = DEVICE.build(connection, row)
    device.issuing_ca_pem = row[len(DEVICE)]
    for offset, flag in enumerate(flags, start=len(DEVICE) + 1):
        setattr(device, flag.name, flag.value(row[offset]))
    return device


def idle_sessions_sql(connection, device):
    """Flag SQL: the device has sessions open with no message since the parameter's time."""
    table, q = _q(connection, _table(ManagementSession)), functools.partial(_q, connection)
    return (f"EXISTS (SELECT 1 FROM {table} x WHERE x.{q('device_id')} = {device} AND x.{q('ended_at')} IS NULL "
            f"AND x.{q('updated_at')} < %s)")


def overdue_commands_sql(connection, device):
    """Flag SQL: the device has queued or sent commands expired at the parameter's time."""
    table, q = _q(connection, _table(DeviceCommand)), functools.partial(_q, connection)
    return (f"EXISTS (SELECT 1 FROM {table} x WHERE x.{q('device_id')} = {device} "
            f"AND x.{q('status')} IN ('{DeviceCommand.Status.QUEUED}', '{DeviceCommand.Status.SENT}') "
            f"AND x.{q('expires_at')} <= %s)")


def memberships_sql(connection, device, user):
    """SQL text naming the device's configuration groups by hand and its user's (`device`, `user`: their
    id columns), in a canonical order: what a reconciliation is computed from besides the groups
    themselves and the device's own fields."""
    q = functools.partial(_q, connection)
    members, users = q(_table(ConfigurationGroup.devices.through)), q(_table(ConfigurationGroup.users.through))
    group = q("configurationgroup_id")

    def listed(table, column, owner):
        if connection.vendor == "postgresql":
            return (f"(SELECT string_agg(m.{group}::text, ',' ORDER BY m.{group}) FROM {table} m "
                    f"WHERE m.{q(column)} = {owner})")
        return (f"(SELECT group_concat(g, ',') FROM (SELECT m.{group} AS g FROM {table} m "
                f"WHERE m.{q(column)} = {owner} ORDER BY 1))")

    return (f"(COALESCE({listed(members, 'device_id', device)}, '') || '|' || "
            f"COALESCE({listed(users, 'user_id', user)}, ''))")


def reconciled_as_sql(connection, device):
    """Flag SQL: the fingerprint of the device's last reconciliation when it was made at the current
    ConfigurationRevision with the memberships the device has now, else NULL."""
    q = functools.partial(_q, connection)
    user = f"(SELECT u.{q('user_id')} FROM {q(_table(Device))} u WHERE u.{q('id')} = {device})"
    return (f"SELECT r.{q('fingerprint')} FROM {q(_table(DeviceReconciliation))} r WHERE r.{q('device_id')} = {device} "
            f"AND r.{q('revision')} = (SELECT v.{q('number')} FROM {q(_table(ConfigurationRevision))} v "
            f"WHERE v.{q('id')} = 1) AND r.{q('memberships')} = {memberships_sql(connection, device, user)}")


def settings_need_reconciler_sql(connection, device):
    """Flag SQL: one of the device's settings has something for the reconciler to do whatever the groups:
    no command (deleted), a command that timed out or was cancelled (sent again), or a removal the
    device confirmed (forgotten). management/reconcile.py, _converge and _withdraw."""
    q = functools.partial(_q, connection)
    status, pending = f"c.{q('status')}", f"('{DeviceCommand.Status.QUEUED}', '{DeviceCommand.Status.SENT}')"
    retryable = f"('{DeviceCommand.Status.TIMED_OUT}', '{DeviceCommand.Status.CANCELLED}')"
    return (f"EXISTS (SELECT 1 FROM {q(_table(DeviceSettingState))} st LEFT JOIN {q(_table(DeviceCommand))} c "
            f"ON c.{q('id')} = st.{q('command_id')} WHERE st.{q('device_id')} = {device} AND "
            f"(c.{q('id')} IS NULL OR {status} IN {retryable} OR (st.{q('removing')} AND {status} NOT IN {pending} "
            f"AND ({status} = '{DeviceCommand.Status.SUCCEEDED}' OR c.{q('status_code')} = 404))))")


@statement
def _mark_reconciled_sql(connection):
    q = functools.partial(_q, connection)
    columns = ", ".join(q(name) for name in ("device_id", "revision", "memberships", "fingerprint"))
    revision = f"(SELECT v.{q('number')} FROM {q(_table(ConfigurationRevision))} v WHERE v.{q('id')} = 1)"
    memberships = memberships_sql(connection, f"d.{q('id')}", f"d.{q('user_id')}")
    return (f"INSERT INTO {q(_table(DeviceReconciliation))} ({columns}) "
            f"SELECT d.{q('id')}, {revision}, {memberships}, %s FROM {q(_table(Device))} d WHERE d.{q('id')} = %s "
            f"ON CONFLICT ({q('device_id')}) DO UPDATE SET "
            + ", ".join(f"{q(name)} = EXCLUDED.{q(name)}" for name in ("revision", "memberships", "fingerprint")))


def mark_reconciled(device_id, fingerprint):
    """Record that the device is being reconciled at the current ConfigurationRevision with its present
    memberships and these inputs. Written before the groups are read: a change committed after this
    statement raises the revision or changes the memberships, and one committed before it is seen by
    the reads that follow."""
    connection = _connection(DeviceReconciliation)
    execute(connection, _mark_reconciled_sql(connection), [fingerprint, device_id])


@statement
def _open_session_sql(connection):
    q = functools.partial(_q, connection)
    sessions, commands = q(_table(ManagementSession)), q(_table(DeviceCommand))
    # The cached reply only for a copy of the last message (the same hash): otherwise it would come
    # once per command row, and only a retransmission needs it.
    cached = f"CASE WHEN s.{q('last_request_hash')} = %s THEN s.{q('last_reply')} END"
    return (f"SELECT {SESSION.select(connection, {'last_reply': cached})}, {COMMAND.select(connection)} "
            f"FROM {sessions} s LEFT JOIN {commands} c ON c.{q('session_id')} = s.{q('id')} AND c.{q('status')} = %s "
            f"WHERE s.{q('id')} = (SELECT max(x.{q('id')}) FROM {sessions} x WHERE x.{q('device_id')} = %s "
            f"AND x.{q('session_id')} = %s AND x.{q('ended_at')} IS NULL) "
            f"ORDER BY c.{q('id')}{_lock(connection, 's')}")


def open_session(device_id, session_id, request_hash=""):
    """(session, commands): the device's open session of that SessionID (the latest), locked, and its
    commands sent and not answered yet, in one statement; (None, []) without one. The session's
    `last_reply` is read only when its `last_request_hash` is `request_hash` (a retransmitted
    message), else it is None."""
    connection = _connection(ManagementSession)
    params = [request_hash, DeviceCommand.Status.SENT, device_id, session_id]
    rows = execute(connection, _open_session_sql(connection), params).fetchall()
    if not rows:
        return None, []
    session = SESSION.build(connection, rows[0])
    commands = [COMMAND.build(connection, row, len(SESSION)) for row in rows]
    return session, [command for command in commands if command is not None]


@dataclass(frozen=True)
class QueueRead:
    """What `queued` is given, for open_session_and_queue to read the queue in the same statement."""
    now: datetime
    limit: int
    user_signed_in: bool
    user_scope: str


@statement
def _open_session_and_queue_sql(connection, user_signed_in):
    q = functools.partial(_q, connection)
    sessions, commands = q(_table(ManagementSession)), q(_table(DeviceCommand))
    cached = f"CASE WHEN s.{q('last_request_hash')} = %s THEN s.{q('last_reply')} END"
    # Both reads as CTEs, each with its own lock (a locking clause is not allowed on a UNION's members),
    # then the session's rows (0) and the queue's (1) one after the other.
    open_session = (f"SELECT * FROM {sessions} x WHERE x.{q('id')} = (SELECT max(y.{q('id')}) FROM {sessions} y "
                    f"WHERE y.{q('device_id')} = %s AND y.{q('session_id')} = %s AND y.{q('ended_at')} IS NULL)"
                    f"{_lock(connection)}")
    queue = _queued_sql(connection, user_signed_in)
    blanks = ", ".join(["NULL"] * len(SESSION))
    return (f"WITH s AS ({open_session}), q AS ({queue}) "
            f"SELECT 0, {SESSION.select(connection, {'last_reply': cached})}, {COMMAND.select(connection)} "
            f"FROM s LEFT JOIN {commands} c ON c.{q('session_id')} = s.{q('id')} AND c.{q('status')} = %s "
            f"UNION ALL SELECT 1, {blanks}, {COMMAND.select(connection)} FROM q c "
            f"ORDER BY 1, {len(SESSION) + 2}")


def open_session_and_queue(device_id, session_id, request_hash, queue):
    """(session, commands, queued): open_session's two, and what `queued` would read with `queue` (a
    QueueRead), in one statement. The caller reads the queue again if anything of its own
    transaction may have changed it since (omadm.Conversation.next_commands)."""
    connection = _connection(ManagementSession)
    params = [device_id, session_id, *_queued_params(connection, device_id, queue.now, queue.limit,
                                                       queue.user_signed_in, queue.user_scope),
              request_hash, DeviceCommand.Status.SENT]
    rows = execute(connection, _open_session_and_queue_sql(connection, queue.user_signed_in), params).fetchall()
    session, waiting, queued = None, [], []
    for row in rows:
        if row[0] == 1:
            queued.append(COMMAND.build(connection, row, 1 + len(SESSION)))
            continue
        if session is None:
            session = SESSION.build(connection, row, 1)
        command = COMMAND.build(connection, row, 1 + len(SESSION))
        if command is not None:
            waiting.append(command)
    return session, waiting, queued


@statement
def _queued_sql(connection, user_signed_in):
    q = functools.partial(_q, connection)
    # A prefix compared as such (no LIKE pattern to escape), case-sensitive on both databases.
    held = "" if user_signed_in else f" AND substr(c.{q('target')}, 1, %s) <> %s"
    lock = _lock(connection)
    return (f"SELECT {COMMAND.select(connection)} FROM {q(_table(DeviceCommand))} c "
            f"WHERE c.{q('device_id')} = %s AND c.{q('status')} = %s AND c.{q('expires_at')} > %s{held} "
            f"ORDER BY c.{q('id')} LIMIT %s{lock}{_skip_locked(connection) if lock else ''}")


def queued(device_id, now, *, limit, user_signed_in, user_scope):
    """The device's next commands in sequence (pk) order, at most `limit`, unexpired; those under
    `user_scope` only when a user is signed in. Locked, skipping rows locked by a concurrent session of
    the same device, so two sessions never send the same command."""
    connection = _connection(DeviceCommand)
    params = _queued_params(connection, device_id, now, limit, user_signed_in, user_scope)
    rows = execute(connection, _queued_sql(connection, user_signed_in), params).fetchall()
    return [COMMAND.build(connection, row) for row in rows]


def _queued_params(connection, device_id, now, limit, user_signed_in, user_scope):
    params = [device_id, DeviceCommand.Status.QUEUED, _dt(connection, now)]
    if not user_signed_in:
        params += [len(user_scope), user_scope]
    return [*params, limit]


@statement
def _group_settings_sql(connection, with_user):
    q = functools.partial(_q, connection)
    members = ConfigurationGroup.devices.through
    users = ConfigurationGroup.users.through
    direct = (f"EXISTS (SELECT 1 FROM {q(_table(members))} m WHERE m.{q('configurationgroup_id')} = g.{q('id')} "
              f"AND m.{q('device_id')} = %s)")
    if with_user:
        direct += (f" OR EXISTS (SELECT 1 FROM {q(_table(users))} u WHERE u.{q('configurationgroup_id')} = g.{q('id')} "
                   f"AND u.{q('user_id')} = %s)")
    # The condition twice (selected, then filtered on): SQLite cannot filter on a column alias.
    return (f"SELECT {SETTING.select(connection)}, {GROUP.select(connection)}, ({direct}) "
            f"FROM {q(_table(GroupSetting))} gs JOIN {q(_table(ConfigurationGroup))} g ON g.{q('id')} = gs.{q('group_id')} "
            f"WHERE ({direct}) OR g.{q('rule_enabled')} "
            f"ORDER BY g.{q('priority')}, gs.{q('group_id')}, gs.{q('id')}")


def group_settings_for(device_id, user_id):
    """The settings of the groups `device_id` may belong to (by hand, through its user `user_id` or
    None, or any group with a rule), each with its `group` and `direct` (a member by hand or through
    the user), in group priority order."""
    connection = _connection(GroupSetting)
    params = [device_id] if user_id is None else [device_id, user_id]
    sql = _group_settings_sql(connection, user_id is not None)
    params = params + params  # the condition is in the SELECT and the WHERE
    rows = execute(connection, sql, params).fetchall()
    settings, groups = [], {}
    for row in rows:
        setting = SETTING.build(connection, row)
        group_pk = row[len(SETTING)]
        if group_pk not in groups:
            groups[group_pk] = GROUP.build(connection, row, len(SETTING))
        setting.group = groups[group_pk]
        setting.direct = bool(row[len(SETTING) + len(GROUP)])
        settings.append(setting)
    return settings


@statement
def _states_sql(connection):
    q = functools.partial(_q, connection)
    return (f"SELECT {STATE.select(connection)}, {COMMAND.select(connection)} FROM {q(_table(DeviceSettingState))} st "
            f"LEFT JOIN {q(_table(DeviceCommand))} c ON c.{q('id')} = st.{q('command_id')} "
            f"WHERE st.{q('device_id')} = %s")


def setting_states(device_id):
    """The device's DeviceSettingState rows, each with its `command` (or None)."""
    connection = _connection(DeviceSettingState)
    states = []
    for row in execute(connection, _states_sql(connection), [device_id]).fetchall():
        state = STATE.build(connection, row)
        state.command = COMMAND.build(connection, row, len(STATE))
        states.append(state)
    return states


# --- the writes of a message -------------------------------------------------------------------------

SESSION_FIELDS = ["device_id", "session_id", "auth", "server_msg_id", "client_msg_id", "messages",
                  "last_request_hash", "last_reply", "events", "started_at", "updated_at", "ended_at"]
SENT_FIELDS = ["status", "msg_id", "cmd_id", "sent_at", "attempts"]  # and the session
ANSWERED_FIELDS = ["status", "status_code", "completed_at", "result_data", "result_format", "note"]


def _prep(connection, model, name, value):
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def save_message(session, *, sent=(), answered=(), device=None, device_fields=()):
    """Save what one message changed, in one statement on PostgreSQL: the session (inserted when new,
    its id then set on it), the commands `sent` in the reply (status, session, msg_id, cmd_id,
    sent_at, attempts), the commands the device `answered` (status, status_code, completed_at, the
    result, note) and the `device_fields` of `device`. A command is in at most one of the lists."""
    connection = _connection(ManagementSession)
    if _postgresql(connection):
        _save_message_in_one(connection, session, list(sent), list(answered), device, sorted(device_fields))
        return
    if session.pk is None:
        session.save(force_insert=True)
    else:
        session.save(update_fields=[name for name in SESSION_FIELDS if name != "device_id"])
    cursor = connection.cursor()
    commands = _q(connection, _table(DeviceCommand))
    if sent:
        sets = ", ".join(f"{_q(connection, name)} = %s" for name in ["session_id", *SENT_FIELDS])
        cursor.executemany(f"UPDATE {commands} SET {sets} WHERE {_q(connection, 'id')} = %s", [
            [session.pk, *(_prep(connection, DeviceCommand, name, getattr(command, name)) for name in SENT_FIELDS),
             command.pk] for command in sent])
    if answered:
        sets = ", ".join(f"{_q(connection, name)} = %s" for name in ANSWERED_FIELDS)
        cursor.executemany(f"UPDATE {commands} SET {sets} WHERE {_q(connection, 'id')} = %s", [
            [*(_prep(connection, DeviceCommand, name, getattr(command, name)) for name in ANSWERED_FIELDS),
             command.pk] for command in answered])
    if device is not None and device_fields:
        device.save(update_fields=list(device_fields))
    _sessionise(session, sent)


def _sessionise(session, sent):
    for command in sent:
        command.session = session


# Column types of the answered commands' records (json_to_recordset).
_ANSWERED_TYPES = {"id": "bigint", "status": "varchar", "status_code": "integer", "completed_at": "timestamptz",
                   "result_data": "text", "result_format": "varchar", "note": "varchar"}


@statement
def _save_message_sql(connection, new_session, with_sent, with_answered, device_fields):
    q = functools.partial(_q, connection)
    session_table, commands, devices = q(_table(ManagementSession)), q(_table(DeviceCommand)), q(_table(Device))
    if new_session:
        parts = [f"s AS (INSERT INTO {session_table} ({', '.join(q(name) for name in SESSION_FIELDS)}) "
                 f"VALUES ({', '.join(['%s'] * len(SESSION_FIELDS))}) RETURNING {q('id')})"]
    else:
        parts = [f"s AS (UPDATE {session_table} SET {', '.join(f'{q(name)} = %s' for name in SESSION_FIELDS[1:])} "
                 f"WHERE {q('id')} = %s RETURNING {q('id')})"]
    counts = []
    # The commands as one JSON parameter, a record per command (json_to_recordset, PostgreSQL
    # documentation "JSON Processing Functions"): the statement's text does not depend on their number,
    # and one JSON text is far cheaper for psycopg to pass than an array per column. A reply's commands
    # share their status, MsgID and time.
    if with_sent:
        parts.append(f"sent AS (UPDATE {commands} c SET {q('session_id')} = (SELECT {q('id')} FROM s), "
                     f"{q('status')} = %s, {q('msg_id')} = %s, {q('sent_at')} = %s, "
                     f"{q('cmd_id')} = v.{q('cmd_id')}, {q('attempts')} = v.{q('attempts')} "
                     f"FROM json_to_recordset(%s::json) AS v({q('id')} bigint, {q('cmd_id')} integer, "
                     f"{q('attempts')} smallint) WHERE c.{q('id')} = v.{q('id')} RETURNING 1)")
        counts.append("(SELECT count(*) FROM sent)")
    if with_answered:
        columns = ["id", *ANSWERED_FIELDS]
        parts.append(
            f"answered AS (UPDATE {commands} c SET "
            + ", ".join(f"{q(field)} = v.{q(field)}" for field in ANSWERED_FIELDS)
            + f" FROM json_to_recordset(%s::json) "
            f"AS v({', '.join(f'{q(column)} {_ANSWERED_TYPES[column]}' for column in columns)}) "
            f"WHERE c.{q('id')} = v.{q('id')} RETURNING 1)")
        counts.append("(SELECT count(*) FROM answered)")
    if device_fields:
        columns = [Device._meta.get_field(name).column for name in device_fields]
        parts.append(f"d AS (UPDATE {devices} SET {', '.join(f'{q(column)} = %s' for column in columns)} "
                     f"WHERE {q('id')} = %s RETURNING 1)")
    returned = [f"(SELECT {q('id')} FROM s)", *counts]
    return "WITH " + ", ".join(parts) + " SELECT " + ", ".join(returned)


def _fields(model, names):
    return [model._meta.get_field(name) for name in names]


@functools.cache
def _preparers(alias, model, names):
    """[(attname, prepare)] of the fields `names` of `model` on the database `alias` (mdmportal.rows.preparer)."""
    return [(field.attname, preparer(field, connections[alias])) for field in _fields(model, names)]


def _records(names, rows):
    """JSON text of `rows` as objects with `names`, for json_to_recordset: a datetime as ISO 8601 with its
    offset (which PostgreSQL reads back as the same instant), the rest as JSON has it."""
    return json.dumps([{name: value.isoformat() if isinstance(value, datetime) else value
                        for name, value in zip(names, row)} for row in rows])


def _save_message_in_one(connection, session, sent, answered, device, device_fields):
    if device is None:
        device_fields = []
    params = [prepare(getattr(session, attname), connection)
              for attname, prepare in _preparers(connection.alias, ManagementSession, tuple(SESSION_FIELDS))]
    if session.pk is not None:
        params = params[1:] + [session.pk]  # an UPDATE: the device stays
    if sent:
        first = sent[0]
        if any((c.status, c.msg_id, c.sent_at) != (first.status, first.msg_id, first.sent_at) for c in sent):
            raise ValueError("the commands of one reply share their status, MsgID and time")
        params += [first.status, first.msg_id, _dt(connection, first.sent_at),
                   _records(["id", "cmd_id", "attempts"], [[c.pk, c.cmd_id, c.attempts] for c in sent])]
    if answered:
        preparers = _preparers(connection.alias, DeviceCommand, tuple(ANSWERED_FIELDS))
        params.append(_records(["id", *ANSWERED_FIELDS], [
            [command.pk, *(prepare(getattr(command, attname), connection) for attname, prepare in preparers)]
            for command in answered]))
    if device_fields:
        params += [prepare(getattr(device, attname), connection)
                   for attname, prepare in _preparers(connection.alias, Device, tuple(device_fields))]
        params.append(device.pk)
    sql = _save_message_sql(connection, session.pk is None, bool(sent), bool(answered), tuple(device_fields))
    session_pk, *counts = execute(connection, sql, params).fetchone()
    expected = [len(rows) for rows in (sent, answered) if rows]
    if counts != expected:
        raise RuntimeError(f"saved {counts} command rows of {expected} (sent, answered)")
    session.pk = session_pk
    session._state.adding = False
    _sessionise(session, sent)
