"""Rows of explicit SQL as model instances: a model's concrete columns in a SELECT, and the instance
Model.from_db (the ORM's own constructor for loaded rows) builds from them, each value through the
converters the ORM would apply (the backend's, such as SQLite's dates made aware, and the field's
from_db_value); and new instances written by one INSERT with the values the ORM would send. Used by
the statements written out on the hot paths (enrollment/rst_sql.py, management/checkin_sql.py, the
singleton rows every device request reads, the enrollment's INSERTs).

Written out because compiling a statement costs Django's ORM more CPU than PostgreSQL spends running
a primary-key lookup or a one-row INSERT (bench/_profile_enroll.py, bench/_profile_checkin.py): the
SQL text of a model is built once per process here, and only the values are computed per call."""
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
        self._converters, self._selects, self._inserts = {}, {}, {}

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
        [LIMIT <limit>]`; `where` and `order_by` name columns through the alias."""
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

    def exists(self, connection, where, params=()):
        """Whether `SELECT 1 FROM <table> <alias> WHERE <where> LIMIT 1` finds a row."""
        connection = connections[connection.alias]
        key = (connection.alias, where, "exists")
        sql = self._selects.get(key)
        if sql is None:
            table = connection.ops.quote_name(self.model._meta.db_table)
            sql = self._selects[key] = f"SELECT 1 FROM {table} {self.alias} WHERE {where} LIMIT 1"
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return cursor.fetchone() is not None

    def column(self, connection, name):
        """The column of field `name`, through the alias, quoted: for `where` and `order_by`."""
        return f"{self.alias}.{connection.ops.quote_name(self.model._meta.get_field(name).column)}"

    def first(self, connection, where, params=(), *, order_by=""):
        """The first instance of where(…, limit=1), or None."""
        found = self.where(connection, where, params, order_by=order_by, limit=1)
        return found[0] if found else None

    def insert(self, connection, instances):
        """Write new `instances` (their primary key unset, an auto field) with one INSERT … RETURNING
        their keys, the values being what the ORM would send (each field's pre_save for an addition,
        auto_now and defaults included, then get_db_prep_save, see preparer). As Model.save() does, the
        pre_save and post_save signals are sent for each instance (created=True), when anything listens.
        Needs a database that returns rows from an INSERT (PostgreSQL, SQLite 3.35+); elsewhere the
        ORM's bulk_create does the writing."""
        if not instances:
            return instances
        connection = connections[connection.alias]  # the connection itself: the proxy costs a lookup per use
        meta = self.model._meta
        if not connection.features.can_return_rows_from_bulk_insert:
            for instance in instances:
                signals.pre_save.send(sender=self.model, instance=instance, raw=False, using=connection.alias,
                                      update_fields=None)
            self.model._base_manager.using(connection.alias).bulk_create(instances)
            for instance in instances:
                signals.post_save.send(sender=self.model, instance=instance, created=True, raw=False,
                                       using=connection.alias, update_fields=None)
            return instances
        fields, prepares, row_sql = self._insert_parts(connection)
        sql_key = (connection.alias, len(instances))
        sql = self._inserts.get(sql_key)
        if sql is None:
            table = connection.ops.quote_name(meta.db_table)
            names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
            sql = (f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(instances))} "
                   f"RETURNING {connection.ops.quote_name(meta.pk.column)}")
            self._inserts[sql_key] = sql
        if signals.pre_save.has_listeners(self.model):
            for instance in instances:
                signals.pre_save.send(sender=self.model, instance=instance, raw=False, using=connection.alias,
                                      update_fields=None)
        params = []
        for instance in instances:
            if instance.pk is not None:
                raise ValueError(f"{instance!r} already has a primary key")
            params += [prepare(field.pre_save(instance, True), connection) for field, prepare in zip(fields, prepares)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            keys = cursor.fetchall()
        for instance, (key,) in zip(instances, keys, strict=True):
            instance.pk = key
            instance._state.adding, instance._state.db = False, connection.alias
        if signals.post_save.has_listeners(self.model):
            for instance in instances:
                signals.post_save.send(sender=self.model, instance=instance, created=True, raw=False,
                                       using=connection.alias, update_fields=None)
        return instances

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
