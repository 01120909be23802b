"""The deployment is checked as CI would: migrations complete, production settings pass check --deploy."""
import os
import subprocess
import sys
import tempfile

from django.core.management import call_command

from tests.services import ROOT, isolated

PRODUCTION_ENV = {
    "SECRET_KEY": "ci-deploy-check-9f8e7d6c5b4a39281706f5e4d3c2b1a0-abcdefghijklmnop",
    "PORTAL_URL": "https://portal.example.com",
    "ENROLLMENT_URL": "https://enterpriseenrollment.example.com",
    "CA_KEY_PASSPHRASE": "ci-deploy-check-passphrase",
    "EMAIL_URL": "smtp+tls://mdm%40example.com:password@smtp.example.com:587",
    "DEBUG": "false",
    # The production settings, not the test suite's (which pytest-django exports to this process).
    "DJANGO_SETTINGS_MODULE": "mdmportal.settings",
}


def run_check(env):
    """check --deploy on a fresh, empty SQLite database: not the developer's db.sqlite3 (whose CA a
    ./serve made with another passphrase), nor the database DATABASE_URL names. The checks that read
    the database are run against a migrated one by tests/test_deployment.py."""
    with tempfile.TemporaryDirectory() as folder:
        env = isolated({**os.environ, "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3", **env})
        return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_models_and_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_production_settings_pass_check_deploy():
    result = run_check(PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_refuses_the_development_secret_key():
    # Outside DEBUG the settings themselves refuse to load (tests/test_secrets_settings.py).
    result = run_check({**PRODUCTION_ENV, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stdout + result.stderr


def test_check_deploy_reports_the_development_secret_key_as_an_error_with_debug():
    result = run_check({**PRODUCTION_ENV, "SECRET_KEY": "", "DEBUG": "true"})
    assert result.returncode != 0
    assert "ERRORS:" in result.stderr and "mdmportal.E001" in result.stderr
