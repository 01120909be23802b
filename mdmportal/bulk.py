"""Set-based writes the ORM has no method for, or none cheap enough: INSERT … SELECT, so that a console
action on thousands of rows costs one statement per table instead of a Python object and a query
parameter per row; and an UPDATE of a few rows' fields from their values, for the OMA-DM endpoint."""
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


def bulk_update(objects, fields):
    """Save `fields` of `objects` (rows of one model) in one UPDATE. On PostgreSQL an UPDATE ... FROM
    (VALUES ...), whose cost barely grows with the rows; elsewhere Django's bulk_update, whose CASE per
    field and row made it the costliest step of a message in profiles (Python building the
    expressions, not the database)."""
    if not objects:
        return
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields)
        return
    meta, quote = model._meta, connection.ops.quote_name
    key, columns = meta.pk, [meta.get_field(name) for name in fields]
    row = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in [key, *columns]) + ")"
    params = []
    for obj in objects:
        params.append(key.get_db_prep_save(obj.pk, connection))
        for field in columns:
            # A foreign key set to a row saved since (the session of its first message): its id now.
            value = getattr(obj, field.name).pk if field.is_relation and getattr(obj, field.name) else \
                getattr(obj, field.attname)
            params.append(field.get_db_prep_save(value, connection))
    names = ", ".join(quote(field.column) for field in [key, *columns])
    assignments = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in columns)
    sql = (f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM (VALUES {', '.join([row] * len(objects))}) "
           f"AS v({names}) WHERE t.{quote(key.column)} = v.{quote(key.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
