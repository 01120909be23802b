"""Set-based writes the ORM has no method for, or none cheap enough: INSERT … SELECT, so that a console
action on thousands of rows costs one statement per table instead of a Python object and a query
parameter per row."""
from django.db import connections, router


def insert_select(model, source, *, returning=("pk",), **columns):
    """INSERT INTO `model`'s table one row per row of the queryset `source`, in one statement. Each
    keyword names a field of `model` and gives the expression (over `source`'s model) of its value;
    fields not named get NULL, so every non-null field must be named (Django sets no database
    defaults). Returns the `returning` fields of the new rows, as tuples, in no particular order."""
    db = router.db_for_write(model)
    meta = model._meta
    aliases = {f"insert_{name}": expression for name, expression in columns.items()}
    # Django 5.2 keeps values_list()'s order in the SELECT, which is the INSERT's column order.
    select, params = source.order_by().annotate(**aliases).values_list(*aliases).query.get_compiler(db).as_sql()
    connection = connections[db]
    quote = connection.ops.quote_name
    targets = ", ".join(quote(meta.get_field(name).column) for name in columns)
    returned = ", ".join(quote(meta.pk.column if name == "pk" else meta.get_field(name).column) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(meta.db_table)} ({targets}) {select} RETURNING {returned}", params)
        return cursor.fetchall()

