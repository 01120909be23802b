"""Settings of the test suite (pytest.ini): the production settings, with DEBUG off as pytest-django
runs them, given the two secrets production must set (mdmportal/settings.py refuses to load without
them outside DEBUG). They go into the environment, not into settings, so that the processes tests
start (the Celery worker, which inherits DJANGO_SETTINGS_MODULE and the environment) use the same
ones. Values set in the environment beforehand win.

No `.env` is read, whatever the environment says (MDMPORTAL_ENV_FILE empty, inherited by the processes
tests start): the suite never reads a developer's working files (`.env`, `db.sqlite3`, `var/`)."""
import os

os.environ["MDMPORTAL_ENV_FILE"] = ""

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-7d1e4b9a2c6f8e0d3a5b7c9e1f2a4c6e8b0d2f4a6c8e")
os.environ.setdefault("CA_KEY_PASSPHRASE", "tests-only-ca-key-passphrase-5e8a1c3f7b9d")

from mdmportal.settings import *  # noqa: E402,F401,F403
