"""The test suite reads none of a developer's working files: not `.env` (mdmportal/settings.py reads
one into the environment), not `db.sqlite3` (the default DATABASE_URL). A developer who ran ./serve,
or keeps a `.env` pointing at their own database, gets the same results as a fresh clone.

The settings read the file MDMPORTAL_ENV_FILE names (by default `.env` next to manage.py; empty reads
none), so these tests write a hostile file in a temporary folder and show that the suite's process
and the processes it starts ignore it, without touching the developer's own files.
"""
import os
import subprocess
import sys

import pytest

from tests import test_deploy, test_secrets_settings
from tests.services import ROOT

HOSTILE_SECRET_KEY = "hostile-env-file-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def hostile_env_file(tmp_path):
    """What a developer's `.env` may hold: their own database (here one that cannot open), a secret
    key, an SMTP server, DEBUG."""
    path = tmp_path / "hostile.env"
    path.write_text("\n".join([
        "DATABASE_URL=sqlite:///nonexistent/x.db",
        f"SECRET_KEY={HOSTILE_SECRET_KEY}",
        "CA_KEY_PASSPHRASE=hostile-env-file-passphrase",
        "EMAIL_URL=smtp://127.0.0.1:2525",
        "DEBUG=true",
        "",
    ]))
    return path


def settings_of_a_process(tmp_path, **variables):
    """SECRET_KEY and the database NAME as a Django process started with `variables` alone sees them."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DJANGO_SETTINGS_MODULE": "mdmportal.settings",
           "DEBUG": "true", **variables}
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; "
         "print(settings.SECRET_KEY); print(settings.DATABASES['default']['NAME'])"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_the_settings_read_the_env_file_that_mdmportal_env_file_names(tmp_path, hostile_env_file):
    """The control: the hostile file is one the settings would read."""
    secret_key, database = settings_of_a_process(tmp_path, MDMPORTAL_ENV_FILE=str(hostile_env_file))
    assert secret_key == HOSTILE_SECRET_KEY
    assert database == "nonexistent/x.db"


def test_an_empty_mdmportal_env_file_reads_no_file(tmp_path, hostile_env_file):
    secret_key, _ = settings_of_a_process(tmp_path, MDMPORTAL_ENV_FILE="")
    assert secret_key != HOSTILE_SECRET_KEY


def test_the_test_process_reads_no_env_file():
    # tests/settings.py says so before the settings load, and the processes tests start inherit it.
    assert os.environ["MDMPORTAL_ENV_FILE"] == ""


def test_check_deploy_of_the_suite_ignores_an_env_file_and_db_sqlite3(monkeypatch, tmp_path, hostile_env_file):
    monkeypatch.setenv("MDMPORTAL_ENV_FILE", str(hostile_env_file))
    monkeypatch.delenv("DATABASE_URL", raising=False)  # as ./test runs without CI: db.sqlite3 would be the default
    result = test_deploy.run_check(test_deploy.PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nonexistent" not in result.stdout + result.stderr


def test_the_secrets_tests_processes_ignore_an_env_file(monkeypatch, tmp_path, hostile_env_file):
    monkeypatch.setenv("MDMPORTAL_ENV_FILE", str(hostile_env_file))
    variables = test_secrets_settings.production(MDMPORTAL_ENV_FILE=str(hostile_env_file))
    del variables["SECRET_KEY"]
    # The hostile file's SECRET_KEY would let this start.
    test_secrets_settings.assert_refused(test_secrets_settings.manage(tmp_path, "check", **variables), "SECRET_KEY")
