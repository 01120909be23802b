"""Trigram indexes for the console's search of the user list and the device list's search by owner email, so
that a substring search among 100,000 rows is an index lookup (mdmportal/search.py). PostgreSQL only:
nothing happens on SQLite. CREATE EXTENSION pg_trgm needs a superuser, or on PostgreSQL 13 and later the
owner of the database (pg_trgm is a trusted extension); see README, Production. The indexes are built
CONCURRENTLY, hence not atomic."""
from django.db import migrations

from mdmportal.search import TrigramIndexes


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        TrigramIndexes("accounts_user", ["email", "display_name", "mdm_username"]),
    ]
