"""Querysets compiled once per process and database, for the hottest reads of the device endpoints.

Django builds and compiles a queryset to SQL at every evaluation. For the OMA-DM endpoint's device
read (42 columns, a CA subquery and, at a session's first message, three EXISTS subqueries) that took
more CPU than PostgreSQL took to run it (bench/_profile_checkin.py). `Prepared` builds the queryset
once with stand-in values, remembers the SQL and where each stand-in sits among its parameters, and
afterwards only swaps the real values in: the same SQL, the same rows, the same model instances
(through a raw query, so the columns must all be the model's own fields or annotations).
"""
from datetime import UTC, datetime, timedelta

from django.db import connections, router

# Stand-ins by type: values no caller passes, each distinct, so that each is found among the compiled
# parameters. Only compiled, never sent to the database.
_STAND_INS = {
    str: lambda i: f"\x00prepared-{i}\x00",
    datetime: lambda i: datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
}


class Prepared:
    """`build(**values)` returns the queryset (of one model, at most a row or a few); `kinds` give each
    value's type (str or datetime). Calling the Prepared with the values returns the list of rows."""

    def __init__(self, model, build, **kinds):
        self.model, self.build, self.kinds = model, build, kinds
        self.compiled = {}  # database alias -> (sql, params, {parameter index: value name})

    def __call__(self, **values):
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        if alias not in self.compiled:
            self.compiled[alias] = self.compile(connection)
        sql, params, slots = self.compiled[alias]
        params = list(params)
        for index, name in slots.items():
            params[index] = self.adapt(connection, values[name])
        return list(self.model.objects.using(alias).raw(sql, params))

    def compile(self, connection):
        stand_ins = {name: _STAND_INS[kind](i) for i, (name, kind) in enumerate(self.kinds.items())}
        queryset = self.build(**stand_ins)
        sql, params = queryset.query.get_compiler(connection.alias).as_sql()
        by_value = {self.adapt(connection, value): name for name, value in stand_ins.items()}
        slots = {index: by_value[param] for index, param in enumerate(params)
                 if isinstance(param, str | datetime) and param in by_value}
        missing = set(self.kinds) - set(slots.values())
        if missing:
            raise ValueError(f"{', '.join(sorted(missing))} not found among the compiled parameters")
        return sql, tuple(params), slots

    @staticmethod
    def adapt(connection, value):
        # As the compiler prepares a datetime parameter: PostgreSQL takes the object, SQLite a string.
        return connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
