"""Rows of explicit SQL as model instances: a model's concrete columns in a SELECT, and the instance
Model.from_db (the ORM's own constructor for loaded rows) builds from them, each value through the
converters the ORM would apply (the backend's, such as SQLite's dates made aware, and the field's
from_db_value). Used by the statements written out on the hot paths (enrollment/rst_sql.py,
management/checkin_sql.py)."""


class Columns:
    """A model's concrete columns in a SELECT, and the instance from_db builds from them. The
    converters (JSON text, SQLite's dates and booleans) are looked up once per database."""

    def __init__(self, model, alias):
        self.model, self.alias = model, alias
        self.fields = model._meta.concrete_fields
        self.attnames = [field.attname for field in self.fields]
        self._converters = {}

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
