"""`AnyOf(field, values)`: `field = ANY(%s)` with the values as one array parameter, for filters on
thousands of ids (a console action on every user of a search).

Django's `__in` writes one placeholder per value: for 10,000 ids that is a 10,000-parameter statement
that psycopg splits and adapts value by value and PostgreSQL parses again for every statement that
repeats the filter. One array parameter costs one adaptation and one parse, and the plan is the same
(PostgreSQL turns `IN (list)` into `= ANY(array)` itself). Other databases get the `IN` list.
"""
from django.db.models import Lookup


class AnyOf(Lookup):
    """Use in filter()/exclude(): `queryset.filter(AnyOf(F("user_id"), ids))`."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)  # converted in as_sql, once the field is resolved

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection) for value in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            return "1 = 0", []
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
