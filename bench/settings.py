"""Settings of the servers bench/run starts: the production settings (mdmportal/settings.py), plus two
hooks that let the benchmark count what those servers do. bench/run sets DJANGO_SETTINGS_MODULE to this
module and the two variables for its gunicorn servers only; nothing else runs with them.

- BENCH_PASSWORD_HASH_LOG: bench._hashers.CountingPBKDF2PasswordHasher (Django's default PBKDF2 hasher,
  same hashes and cost) becomes the only hasher and appends a byte to that file per hash computed.
- BENCH_QUERY_LOG: bench._queries.QueryCountMiddleware goes first and appends the SQL queries and the
  server time of each request to that file.
Both empty: the production settings unchanged."""
from mdmportal.settings import *  # noqa: F401,F403
from mdmportal.settings import MIDDLEWARE, env

BENCH_PASSWORD_HASH_LOG = env("BENCH_PASSWORD_HASH_LOG", default="")
if BENCH_PASSWORD_HASH_LOG:
    PASSWORD_HASHERS = ["bench._hashers.CountingPBKDF2PasswordHasher"]
BENCH_QUERY_LOG = env("BENCH_QUERY_LOG", default="")
if BENCH_QUERY_LOG:
    MIDDLEWARE = ["bench._queries.QueryCountMiddleware", *MIDDLEWARE]
