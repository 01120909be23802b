"""Console search that stays fast with 100,000 rows (bench/devices.py).

Django's admin search is `UPPER(column) LIKE UPPER('%term%')` ORed over the search fields, with a JOIN for a
related field such as `user__email`. No B-tree index serves a substring match, so PostgreSQL read every row:
800 ms for an email search among 100,000 devices. Two things make it an index lookup, with the same matches:

- trigram GIN indexes (PostgreSQL's pg_trgm) on `UPPER(column)` of the searched columns, which serve exactly
  the expression Django writes (migrations `*_trigram_search`, built with `TrigramIndexes` below);
- `SubquerySearchMixin`: a related field is searched in its own table, `user_id = ANY(ARRAY(SELECT id FROM
  user WHERE …))`, computed once; PostgreSQL ORs that with the trigram indexes (a BitmapOr), which it cannot
  do across a JOIN nor with `user_id IN (SELECT …)`.

On SQLite (development) there are no such indexes and the subquery is a plain `IN (SELECT …)`.
"""
from django.contrib.admin.utils import lookup_spawns_duplicates
from django.contrib.postgres.operations import TrigramExtension
from django.contrib.postgres.expressions import ArraySubquery
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.db import connections, models
from django.db.migrations.operations.base import Operation
from django.utils.text import smart_split, unescape_string_literal


class EqualsAny(models.Func):
    """`column = ANY(array)`: unlike `IN (SELECT …)`, usable by an index scan inside an OR."""

    output_field = models.BooleanField()

    def as_sql(self, compiler, connection, **extra_context):
        (column, column_params), (array, array_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions())
        return f"{column} = ANY({array})", (*column_params, *array_params)


def is_email_address(text):
    try:
        validate_email(text)
    except ValidationError:
        return False
    return True


class SubquerySearchMixin:
    """For a ModelAdmin whose search_fields are its own columns or `relation__column` of a forward foreign
    key (no ^, = or @ prefixes). Matches as Django's search does: each word of the term (quotes keep words
    together) must be found, case-insensitively, in one of the fields.

    A word that is a whole email address is looked up exactly (case-insensitively) in `email_search_fields`
    only, when the admin names some: "bob@contoso.com" finds Bob's devices, not jimbob@contoso.com's, and
    is an index lookup of UPPER(column), where a substring match of a long term in every searched column
    made PostgreSQL prefer reading the whole table (300 ms for 100,000 devices). Part of an address
    ("bob@", "contoso.com") is still a substring search of every field."""

    email_search_fields = ()

    def get_search_results(self, request, queryset, search_term):
        search_fields = self.get_search_fields(request)
        if not (search_fields and search_term):
            return queryset, False
        own, related = self._split_search_fields(search_fields)
        postgres = connections[queryset.db].vendor == "postgresql"
        term_queries = []
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            lookup, own_fields, related_fields = "icontains", own, related
            if self.email_search_fields and is_email_address(bit):
                lookup = "iexact"
                own_fields, related_fields = self._split_search_fields(self.email_search_fields)
            matches = [models.Q(**{f"{name}__{lookup}": bit}) for name in own_fields]
            for field, columns in related_fields.items():
                found = field.related_model._base_manager.filter(
                    models.Q.create([(f"{column}__{lookup}", bit) for column in columns], connector=models.Q.OR)
                ).order_by().values(field.target_field.attname)
                if postgres:
                    matches.append(models.Q(EqualsAny(models.F(field.attname), ArraySubquery(found))))
                else:
                    matches.append(models.Q(**{f"{field.attname}__in": found}))
            term_queries.append(models.Q.create(matches, connector=models.Q.OR))
        return queryset.filter(models.Q.create(term_queries)), False

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        try:
            self._split_search_fields(self.search_fields)
            self._split_search_fields(self.email_search_fields)
        except ImproperlyConfigured as error:
            errors.append(checks.Error(str(error), obj=type(self), id="mdmportal.E010"))
        return errors

    def _split_search_fields(self, search_fields):
        """(own column names, {foreign key field: [its model's column names]})."""
        own, related = [], {}
        for name in search_fields:
            relation, _, column = name.partition("__")
            if name[:1] in "^=@" or "__" in column or lookup_spawns_duplicates(self.opts, name):
                raise ImproperlyConfigured(f"{type(self).__name__}: search field {name!r} is not a column of the "
                                           "model or of a model its foreign keys point to")
            if not column:
                own.append(name)
            else:
                related.setdefault(self.opts.get_field(relation), []).append(column)
        return own, related


class TrigramIndexes(Operation):
    """A GIN index on UPPER(column) for each column, on PostgreSQL only (nothing elsewhere: SQLite has no
    such index), after creating pg_trgm when it is missing. Built CONCURRENTLY, so that an upgrade does
    not stop enrollments and check-ins while the indexes of a large table are built: the migration must be
    `atomic = False`. Migrating backwards drops the indexes but keeps pg_trgm, which other apps' indexes
    use too.

    The indexes are not in the models' Meta (the model state): SQLite rebuilds a table with every index of
    its Meta when a later migration alters it, and a GIN index would break that."""

    reduces_to_sql = True
    reversible = True

    def __init__(self, table, columns):
        self.table, self.columns = table, list(columns)

    def state_forwards(self, app_label, state):
        pass

    def index_name(self, column):
        return f"{self.table}_{column}_trgm"[:63]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        TrigramExtension().database_forwards(app_label, schema_editor, from_state, to_state)
        quote = schema_editor.quote_name
        for column in self.columns:
            schema_editor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(self.index_name(column))} ON {quote(self.table)} "
                f"USING gin (UPPER({quote(column)}::text) gin_trgm_ops)")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for column in self.columns:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index_name(column))}")

    def describe(self):
        return f"pg_trgm and trigram indexes on {self.table} ({', '.join(self.columns)}), PostgreSQL only"
