"""API tokens move from Django REST framework's table (the token in clear) to django-rest-knox's (its
SHA-512 and first 15 characters). knox finds a token by those 15 characters and compares the SHA-512
of the whole token, so a token of the old table keeps working unchanged; then the old table, the only
clear copy, is dropped. rest_framework.authtoken is no longer installed, so its table is read with
SQL, when it exists (a database created before the change)."""
import hashlib

from django.db import migrations
from knox.settings import CONSTANTS

OLD_TABLE = "authtoken_token"


def hash_existing_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} FROM {quote(OLD_TABLE)}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    for key, user_id, created in rows:
        token = AuthToken(digest=hashlib.sha512(key.encode()).hexdigest(),
                          token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=None)
        token.save(force_insert=True)
        AuthToken.objects.filter(pk=token.pk).update(created=created)  # auto_now_add set it to now
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {quote(OLD_TABLE)}")
        # Its migrations are no longer applied: were rest_framework.authtoken installed again, it would
        # create its table afresh.
        cursor.execute(f"DELETE FROM {quote('django_migrations')} WHERE {quote('app')} = %s", ["authtoken"])


class Migration(migrations.Migration):

    dependencies = [
        ("invitations", "0004_user_trigram_search"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    # The clear tokens are gone: going back leaves the hashed ones where they are.
    operations = [migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop)]
