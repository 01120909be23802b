"""The most frequent reads of the enrollment requests (GetPolicies and RST), written out as SQL.

Each function runs the statement Django's ORM makes for the query its docstring names, with the same
conditions and ordering, and hands back model instances (mdmportal/rows.py: Model.from_db, the ORM's
own constructor for loaded rows, with the converters the ORM applies, SQLite's aware dates included).
Written out because the ORM's compilation of these statements cost more CPU than PostgreSQL spends running them: measured with bench/_profile_enroll.py,
0.5-1.8 ms per statement in the web worker, against about 0.15 ms for the same statement written out.
The tests that cover these paths (enrollment, package, lockout, re-enrollment, concurrency) run them
as they are; a changed model shows up there, since the column lists come from the models.
"""
import functools

from django.db import connection
from django.utils import timezone

from mdmportal.rows import Columns, statement

from .models import Device, PinEnrollment, PinEnrollmentFailure


def _quote(name):
    return connection.ops.quote_name(name)


@functools.cache
def _columns(model, alias):
    """(Columns, "alias.col, …") of the model's concrete fields, in their order."""
    columns = Columns(model, alias)
    return columns, columns.select(connection)


def _for_update():
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def _moment(value):
    return connection.ops.adapt_datetimefield_value(value)


def _table(model):
    return _quote(model._meta.db_table)


def _column(model, name):
    return _quote(model._meta.get_field(name).column)


def pin_enrollment_by_upn(username, address):
    """PinEnrollment.objects.select_related("owner").filter(upn__iexact=username).annotate(address_locked=
    Exists(its PinEnrollmentFailure for `address` locked until later than now)).first(); or None."""
    from django.contrib.auth import get_user_model

    pin_fields, _ = _columns(PinEnrollment, "p")
    user_fields, _ = _columns(get_user_model(), "u")
    with connection.cursor() as cursor:
        cursor.execute(_pin_enrollment_by_upn_sql(connection), [address, _moment(timezone.now()), username])
        row = cursor.fetchone()
    if row is None:
        return None
    pin_enrollment = pin_fields.build(connection, row[:len(pin_fields)])
    pin_enrollment.owner = user_fields.build(connection, row[len(pin_fields):-1])
    pin_enrollment.address_locked = row[-1]
    return pin_enrollment


@statement
def _pin_enrollment_by_upn_sql(connection):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    _, pin_columns = _columns(PinEnrollment, "p")
    _, user_columns = _columns(User, "u")
    failure = _table(PinEnrollmentFailure)
    return (
        f"SELECT {pin_columns}, {user_columns}, EXISTS(SELECT 1 FROM {failure} f "
        f"WHERE f.{_column(PinEnrollmentFailure, 'pin_enrollment')} = p.{_quote(PinEnrollment._meta.pk.column)} "
        f"AND f.{_column(PinEnrollmentFailure, 'address')} = %s "
        f"AND f.{_column(PinEnrollmentFailure, 'locked_until')} > %s) "
        f"FROM {_table(PinEnrollment)} p "
        f"JOIN {_table(User)} u ON u.{_quote(User._meta.pk.column)} = p.{_column(PinEnrollment, 'owner')} "
        f"WHERE UPPER(p.{_column(PinEnrollment, 'upn')}) = UPPER(%s) "
        f"ORDER BY p.{_column(PinEnrollment, 'created_at')} DESC, p.{_quote(PinEnrollment._meta.pk.column)} DESC "
        f"LIMIT 1"
    )


def pin_enrollment_for_update(pk):
    """PinEnrollment.objects.select_for_update().get(pk=pk) (DoesNotExist when it is gone)."""
    fields, _ = _columns(PinEnrollment, "p")
    with connection.cursor() as cursor:
        cursor.execute(_pin_enrollment_for_update_sql(connection), [pk])
        row = cursor.fetchone()
    if row is None:
        raise PinEnrollment.DoesNotExist(f"PIN enrollment {pk}")
    return fields.build(connection, row)


@statement
def _pin_enrollment_for_update_sql(connection):
    _, columns = _columns(PinEnrollment, "p")
    return (f"SELECT {columns} FROM {_table(PinEnrollment)} p "
            f"WHERE p.{_quote(PinEnrollment._meta.pk.column)} = %s{_for_update()}")


def devices_used_by(pin_enrollment_id):
    """pin_enrollment.devices.exclude(status=Device.Status.REPLACED).count()."""
    with connection.cursor() as cursor:
        cursor.execute(_devices_used_by_sql(connection), [pin_enrollment_id, Device.Status.REPLACED])
        return cursor.fetchone()[0]


@statement
def _devices_used_by_sql(connection):
    return (f"SELECT COUNT(*) FROM {_table(Device)} WHERE {_column(Device, 'pin_enrollment')} = %s "
            f"AND NOT ({_column(Device, 'status')} = %s)")


def live_devices_of_hardware_for_update(device_id, hw_dev_id):
    """list(Device.objects.same_hardware(device_id, hw_dev_id).select_for_update()): the live
    enrollments with this DeviceID, or this HWDevID unless it is all zeros, locked."""
    fields, _ = _columns(Device, "d")
    params = [Device.Status.ENROLLED, device_id]
    with_hardware = bool(hw_dev_id and hw_dev_id.strip("0"))
    if with_hardware:
        params.append(hw_dev_id)
    with connection.cursor() as cursor:
        cursor.execute(_live_devices_of_hardware_sql(connection, with_hardware), params)
        return [fields.build(connection, row) for row in cursor.fetchall()]


@statement
def _live_devices_of_hardware_sql(connection, with_hardware):
    _, columns = _columns(Device, "d")
    match = f"UPPER(d.{_column(Device, 'device_id')}) = UPPER(%s)"
    if with_hardware:
        match = f"({match} OR UPPER(d.{_column(Device, 'hw_dev_id')}) = UPPER(%s))"
    return (f"SELECT {columns} FROM {_table(Device)} d WHERE d.{_column(Device, 'status')} = %s AND {match} "
            f"ORDER BY d.{_column(Device, 'enrolled_at')} DESC, d.{_quote(Device._meta.pk.column)} DESC "
            f"{_for_update()}")


def answered_rst_exists(digest, device_id, since):
    """Device.objects.filter(enrollment_request_digest=digest, device_id=device_id, status=ENROLLED,
    revoked_at=None, last_seen_at=None, certificate_renewed_at=None, enrolled_at__gte=since).exists()."""
    with connection.cursor() as cursor:
        cursor.execute(_answered_rst_exists_sql(connection), [digest, device_id, Device.Status.ENROLLED, _moment(since)])
        return cursor.fetchone() is not None


@statement
def _answered_rst_exists_sql(connection):
    column = functools.partial(_column, Device)
    return (f"SELECT 1 FROM {_table(Device)} WHERE {column('enrollment_request_digest')} = %s "
            f"AND {column('device_id')} = %s AND {column('status')} = %s AND {column('revoked_at')} IS NULL "
            f"AND {column('last_seen_at')} IS NULL AND {column('certificate_renewed_at')} IS NULL "
            f"AND {column('enrolled_at')} >= %s LIMIT 1")


def entra_user(tenant_id, object_id, email, *, for_update=False):
    """The user an Entra user already is, as enrollment/entra.py's known_user() has it: the user linked
    to the token's object (`linked` True), else the one with the token's email (iexact, the first by
    pk; no email for a user-less token), else None. One primary-key lookup: the user's id comes from
    two scalar subqueries, each an index lookup run once (an OR of the two conditions scans every
    user). `for_update`: the user row locked, for the enrollment's transaction."""
    from django.contrib.auth import get_user_model

    fields, _ = _columns(get_user_model(), "u")
    params = [tenant_id, object_id, tenant_id, object_id] + ([email] if email else [])
    with connection.cursor() as cursor:
        cursor.execute(_entra_user_sql(connection, bool(email), for_update), params)
        row = cursor.fetchone()
    if row is None:
        return None
    user = fields.build(connection, row[:-1])
    user.linked = bool(row[-1])
    return user


@statement
def _entra_user_sql(connection, with_email, for_update):
    from django.contrib.auth import get_user_model

    from .models import EntraIdentity

    User = get_user_model()
    _, columns = _columns(User, "u")
    link, user_pk = _table(EntraIdentity), _quote(User._meta.pk.column)
    link_user, link_tenant, link_object = (_column(EntraIdentity, name) for name in ("user", "tenant_id", "object_id"))
    target = f"(SELECT l.{link_user} FROM {link} l WHERE l.{link_tenant} = %s AND l.{link_object} = %s LIMIT 1)"
    if with_email:
        target = (f"COALESCE({target}, (SELECT e.{user_pk} FROM {_table(User)} e "
                  f"WHERE UPPER(e.{_column(User, 'email')}) = UPPER(%s) ORDER BY e.{user_pk} LIMIT 1))")
    return (f"SELECT {columns}, EXISTS(SELECT 1 FROM {link} l WHERE l.{link_user} = u.{user_pk} "
            f"AND l.{link_tenant} = %s AND l.{link_object} = %s) "
            f"FROM {_table(User)} u WHERE u.{user_pk} = {target}{_for_update() if for_update else ''}")
