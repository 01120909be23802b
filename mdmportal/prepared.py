"""Querysets compiled once per process and database, for the hottest reads of the device endpoints.

Django builds and compiles a queryset to SQL at every evaluation. For the OMA-DM endpoint's reads
(the device: 42 columns, a CA subquery and, at a session's first message, three EXISTS subqueries;
the configuration's settings with their groups) that took more CPU than PostgreSQL took to run them
(bench/_profile_checkin.py). `Prepared` builds the queryset once with stand-in values, keeps its
compiler and notes where each stand-in sits among the parameters; each call runs the same SQL with
the real values swapped in and turns the rows into model instances as Django's own iterator does
(select_related and annotations included). Anything else in the queryset (limits, settings) is fixed
at the first call: only what is passed by name varies.
"""
import copy
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.db.models.query import get_related_populators
from django.db.models.sql.constants import MULTI

# Stand-ins by type: values no caller passes, each distinct, so that each is found among the compiled
# parameters. Only compiled, never sent to the database.
_STAND_INS = {
    str: lambda i: f"\x00prepared-{i}\x00",
    int: lambda i: -2_000_000_000 - i,
    datetime: lambda i: datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
}


class Prepared:
    """`build(**values)` returns the queryset (model instances, not values()); `kinds` give each
    value's type (str, int or datetime). Calling the Prepared with the values returns the list of rows."""

    def __init__(self, model, build, **kinds):
        self.model, self.build, self.kinds = model, build, kinds
        self.compiled = {}  # database alias -> (compiler, sql, params, {parameter index: value name})

    def __call__(self, **values):
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        if alias not in self.compiled:
            self.compiled[alias] = self.compile(connection)
        compiler, sql, params, slots = self.compiled[alias]
        params = list(params)
        for index, name in slots.items():
            params[index] = self.adapt(connection, values[name])
        # A copy per call, on this thread's connection (threads share the Prepared, not connections).
        compiler = copy.copy(compiler)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (sql, params)
        return list(self.instances(compiler, alias))

    @staticmethod
    def instances(compiler, alias):
        """As django.db.models.query.ModelIterable does with the rows of `compiler`."""
        select, klass_info, annotation_col_map = compiler.select, compiler.klass_info, compiler.annotation_col_map
        model, start, end = klass_info["model"], klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        related_populators = get_related_populators(klass_info, select, alias)
        for row in compiler.results_iter(compiler.execute_sql(MULTI)):
            obj = model.from_db(alias, init_list, row[start:end])
            for populator in related_populators:
                populator.populate(row, obj)
            for name, position in annotation_col_map.items():
                setattr(obj, name, row[position])
            yield obj

    def compile(self, connection):
        stand_ins = {name: _STAND_INS[kind](i) for i, (name, kind) in enumerate(self.kinds.items())}
        queryset = self.build(**stand_ins)
        if queryset._known_related_objects:
            raise ValueError("build a Prepared from the model's manager, not a related manager")
        compiler = queryset.query.get_compiler(connection.alias)
        sql, params = compiler.as_sql()
        adapted = {name: self.adapt(connection, value) for name, value in stand_ins.items()}
        by_value = {(type(value), value): name for name, value in adapted.items()}
        slots = {index: by_value[type(param), param] for index, param in enumerate(params)
                 if (type(param), param) in by_value}
        missing = set(self.kinds) - set(slots.values())
        if missing:
            raise ValueError(f"{', '.join(sorted(missing))} not found among the compiled parameters")
        return compiler, sql, tuple(params), slots

    @staticmethod
    def adapt(connection, value):
        # As the compiler prepares a datetime parameter: PostgreSQL takes the object, SQLite a string.
        return connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
