"""Rows of explicit SQL as model instances: a model's concrete columns in a SELECT, and the instance
Model.from_db (the ORM's own constructor for loaded rows) builds from them, each value through the
converters the ORM would apply (the backend's, such as SQLite's dates made aware, and the field's
from_db_value); and new instances written by one INSERT with the values the ORM would send. Used by
the statements written out on the hot paths (enrollment/rst_sql.py, management/checkin_sql.py, the
singleton rows every device request reads, the enrollment's INSERTs).

Written out because compiling a statement costs Django's ORM more CPU than PostgreSQL spends running
a primary-key lookup or a one-row INSERT (bench/_profile_enroll.py, bench/_profile_checkin.py): the
SQL text of a model is built once per process here, and only the values are computed per call."""
import functools
from datetime import datetime

from django.db import connections, models
from django.db.models import signals

# What psycopg takes as it is, per kind of field: get_db_prep_save would hand such a value back
# unchanged on PostgreSQL (Django's to_python/get_prep_value of these fields only convert other types,
# and its PostgreSQL operations adapt an aware datetime to itself). Anything else goes through
# get_db_prep_save, as does every value on another database.
_AS_IS = {
    models.CharField: (str,), models.TextField: (str,), models.IntegerField: (int,),
    models.PositiveIntegerField: (int,), models.PositiveSmallIntegerField: (int,), models.SmallIntegerField: (int,),
    models.BigIntegerField: (int,), models.BigAutoField: (int,), models.AutoField: (int,),
    models.BooleanField: (bool,), models.BinaryField: (bytes,), models.ForeignKey: (int,),
}


def preparer(field, connection):
    """A function (value, connection) giving what the ORM would send for `field`'s value: its
    get_db_prep_save, skipped on PostgreSQL for a value of a type psycopg takes as it is (_AS_IS), None
    included when the column takes NULL, and for an aware datetime."""
    slow = field.get_db_prep_save
    if connection.vendor != "postgresql":
        return slow
    as_is = _AS_IS.get(type(field), ())
    if field.null:
        as_is += (type(None),)

    if isinstance(field, models.DateTimeField):
        def prepare(value, connection):
            if (value is None and field.null) or (isinstance(value, datetime) and value.tzinfo is not None):
                return value
            return slow(value, connection)
    else:
        def prepare(value, connection):
            return value if type(value) in as_is else slow(value, connection)
    return prepare


class Columns:
    """A model's concrete columns in a SELECT, and the instance from_db builds from them. The
    converters (JSON text, SQLite's dates and booleans) are looked up once per database."""

    def __init__(self, model, alias, fields=None):
        """`fields`: the names of the fields to read, the primary key among them (the instances built
        have the others deferred, as QuerySet.only() gives them); every concrete field when None. The
        columns are read in the model's order, which Model.from_db expects."""
        self.model, self.alias = model, alias
        self.fields = model._meta.concrete_fields
        if fields is not None:
            wanted = {model._meta.get_field(name) for name in fields}
            if model._meta.pk not in wanted:
                raise ValueError(f"{model.__name__}: the primary key is read too")
            self.fields = [field for field in self.fields if field in wanted]
        self.attnames = [field.attname for field in self.fields]
        self._converters, self._selects, self._conditions, self._inserts = {}, {}, {}, {}

    def __len__(self):
        return len(self.fields)

    def select(self, connection, instead=None):
        """The columns' list; `instead` maps a field's name to an expression read in its place."""
        instead = instead or {}
        return ", ".join(instead.get(field.name) or f"{self.alias}.{connection.ops.quote_name(field.column)}"
                         for field in self.fields)

    def converters(self, connection):
        key = connection.alias
        if key not in self._converters:
            found = []
            for index, field in enumerate(self.fields):
                functions = connection.ops.get_db_converters(field.get_col(self.model._meta.db_table))
                functions += field.get_db_converters(connection)
                if functions:
                    found.append((index, field, functions))
            self._converters[key] = found
        return self._converters[key]

    def build(self, connection, row, start=0):
        """The instance of the columns at row[start:start + len(self)]; None when its key is NULL (an
        outer join that found nothing)."""
        values = list(row[start:start + len(self.fields)])
        if values[0] is None:
            return None
        for index, field, functions in self.converters(connection):
            for function in functions:
                values[index] = function(values[index], field, connection)
        return self.model.from_db(connection.alias, self.attnames, values)

    def where(self, connection, where, params=(), *, order_by="", limit=None):
        """The instances of `SELECT <columns> FROM <table> <alias> WHERE <where> [ORDER BY <order_by>]
        [LIMIT <limit>]`; `where` and `order_by` name columns through the alias (column())."""
        connection = connections[connection.alias]  # the connection itself: the proxy costs a lookup per use
        key = (connection.alias, where, order_by, limit)
        sql = self._selects.get(key)
        if sql is None:
            table = connection.ops.quote_name(self.model._meta.db_table)
            sql = f"SELECT {self.select(connection)} FROM {table} {self.alias} WHERE {where}"
            sql += f" ORDER BY {order_by}" if order_by else ""
            sql += f" LIMIT {int(limit)}" if limit is not None else ""
            self._selects[key] = sql
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return [self.build(connection, row) for row in cursor.fetchall()]

    def filter(self, connection, *, order_by=(), limit=None, **equal):
        """where() with `field = value` for each of `equal` (field names), ANDed, ordered by the
        fields `order_by` names ("-" first for descending, "pk" for the primary key); the condition's
        text is made once per set of names."""
        where, order = self._condition(connection, tuple(equal), tuple(order_by))
        return self.where(connection, where, list(equal.values()), order_by=order, limit=limit)

    def _condition(self, connection, names, order_by=()):
        """(WHERE text, ORDER BY text) of filter(): made once per database and names."""
        key = (connection.alias, names, order_by)
        condition = self._conditions.get(key)
        if condition is None:
            where = " AND ".join(f"{self.column(connection, name)} = %s" for name in names)
            condition = self._conditions[key] = (where, self.order(connection, order_by))
        return condition

    def first(self, connection, *, order_by=(), **equal):
        """The first instance of filter(…), or None."""
        found = self.filter(connection, order_by=order_by, limit=1, **equal)
        return found[0] if found else None

    def exists(self, connection, **equal):
        """Whether filter(…) finds a row, read as `SELECT 1 … LIMIT 1`."""
        connection = connections[connection.alias]
        key = (connection.alias, tuple(equal), "exists")
        sql = self._selects.get(key)
        if sql is None:
            table = connection.ops.quote_name(self.model._meta.db_table)
            where, _ = self._condition(connection, tuple(equal))
            sql = self._selects[key] = f"SELECT 1 FROM {table} {self.alias} WHERE {where} LIMIT 1"
        with connection.cursor() as cursor:
            cursor.execute(sql, list(equal.values()))
            return cursor.fetchone() is not None

    def column(self, connection, name):
        """The column of field `name` ("pk": the primary key), through the alias, quoted."""
        field = self.model._meta.pk if name == "pk" else self.model._meta.get_field(name)
        return f"{self.alias}.{connection.ops.quote_name(field.column)}"

    def order(self, connection, names):
        """An ORDER BY list of the fields `names`, as Meta.ordering writes them ("-" first for
        descending, "pk" for the primary key)."""
        return ", ".join(f"{self.column(connection, name.removeprefix('-'))}{' DESC' if name.startswith('-') else ''}"
                         for name in names)

    def insert(self, connection, instances):
        """Write new `instances` (their primary key unset, an auto field) with one INSERT … RETURNING
        their keys, the values being what the ORM would send (each field's pre_save for an addition,
        auto_now and defaults included, then get_db_prep_save, see preparer). As Model.save() does, the
        pre_save and post_save signals are sent for each instance (created=True). Needs a database that
        returns rows from an INSERT (PostgreSQL, SQLite 3.35+); elsewhere the ORM's bulk_create does
        the writing."""
        if not instances:
            return instances
        for instance in instances:
            if instance.pk is not None:
                raise ValueError(f"{instance!r} already has a primary key")
        connection = connections[connection.alias]  # the connection itself: the proxy costs a lookup per use
        self._send(signals.pre_save, instances, connection)
        if connection.features.can_return_rows_from_bulk_insert:
            self._insert(connection, instances)
        else:
            self.model._base_manager.using(connection.alias).bulk_create(instances)
        self._send(signals.post_save, instances, connection, created=True)
        return instances

    def _insert(self, connection, instances):
        fields, prepares, row_sql = self._insert_parts(connection)
        sql_key = (connection.alias, len(instances))
        sql = self._inserts.get(sql_key)
        if sql is None:
            meta = self.model._meta
            names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
            sql = self._inserts[sql_key] = (
                f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({names}) "
                f"VALUES {', '.join([row_sql] * len(instances))} RETURNING {connection.ops.quote_name(meta.pk.column)}")
        params = []
        for instance in instances:
            params += [prepare(field.pre_save(instance, True), connection) for field, prepare in zip(fields, prepares)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            keys = cursor.fetchall()
        for instance, (key,) in zip(instances, keys, strict=True):
            instance.pk = key
            instance._state.adding, instance._state.db = False, connection.alias

    def _send(self, signal, instances, connection, **extra):
        """`signal` for each instance, with the arguments Model.save() sends it (nothing when no one listens)."""
        if signal.has_listeners(self.model):
            for instance in instances:
                signal.send(sender=self.model, instance=instance, raw=False, using=connection.alias,
                            update_fields=None, **extra)

    def _insert_parts(self, connection):
        """(fields, preparers, "(%s, …)") of an INSERT: every concrete field but the auto primary key."""
        key = ("insert", connection.alias)
        parts = self._inserts.get(key)
        if parts is None:
            pk = self.model._meta.pk
            if not isinstance(pk, models.AutoField):
                raise TypeError(f"{self.model.__name__}: insert() writes models with an auto primary key")
            if len(self.fields) != len(self.model._meta.concrete_fields):
                raise TypeError(f"{self.model.__name__}: insert() writes every column")
            fields = [field for field in self.fields if field is not pk]
            parts = (fields, [preparer(field, connection) for field in fields],
                     "(" + ", ".join(["%s"] * len(fields)) + ")")
            self._inserts[key] = parts
        return parts


def statement(builder):
    """Decorator: `builder(connection, *key)` returns an SQL text; it is built once per database and
    key, since the names in it never change (building such texts from the models at every request
    was a tenth of an RST's CPU)."""
    texts = {}

    @functools.wraps(builder)
    def text(connection, *key):
        cache_key = (connection.alias, *key)
        sql = texts.get(cache_key)
        if sql is None:
            sql = texts[cache_key] = builder(connection, *key)
        return sql

    return text
