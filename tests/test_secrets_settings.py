"""Production secrets: outside DEBUG the portal refuses to start on a missing or published secret, and
refuses to print emails (invitation links, PINs) to its log.

Each case runs Django in a separate process with only the variables it names (nothing of this
process's environment), as systemd starts the portal from deploy/mdmportal.env.example's file.
"""
import subprocess
import sys

import pytest

from tests.services import ROOT, isolated

ENV_EXAMPLE = ROOT / "deploy" / "mdmportal.env.example"
GOOD_SECRET_KEY = "a-real-secret-key-for-this-test-only-7f3c9a1e5b2d8c4f6a0e9b7d3c1f5a8e2b6d"
GOOD_PASSPHRASE = "a-real-ca-passphrase-for-this-test-only-4b8e2f6a"
SMTP = "smtp://127.0.0.1:2525"


def example_value(name):
    """The value deploy/mdmportal.env.example gives `name`: a placeholder operators copy as is."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key == name:
            return value
    raise AssertionError(f"{name} is not in {ENV_EXAMPLE}")


def manage(tmp_path, *argv, **variables):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DJANGO_SETTINGS_MODULE": "mdmportal.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PORTAL_URL": "https://portal.example.com",
           **variables}
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=isolated(env), capture_output=True,
                          text=True, timeout=120)


def production(**overrides):
    return {"DEBUG": "false", "SECRET_KEY": GOOD_SECRET_KEY, "CA_KEY_PASSPHRASE": GOOD_PASSPHRASE,
            "EMAIL_URL": SMTP, **overrides}


def assert_refused(result, variable):
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "django.core.exceptions.ImproperlyConfigured" in output and variable in output, output


# Startup with DEBUG off

def test_production_settings_start(tmp_path):
    result = manage(tmp_path, "check", **production())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value", ["", "  "], ids=["unset", "blank"])
def test_no_secret_key_refuses_to_start(tmp_path, value):
    assert_refused(manage(tmp_path, "check", **production(SECRET_KEY=value)), "SECRET_KEY")


def test_secret_key_missing_from_the_environment_refuses_to_start(tmp_path):
    variables = production()
    del variables["SECRET_KEY"]
    assert_refused(manage(tmp_path, "check", **variables), "SECRET_KEY")


def test_the_development_key_from_the_source_refuses_to_start(tmp_path):
    assert_refused(manage(tmp_path, "check", **production(
        SECRET_KEY="dev-only-insecure-key-set-SECRET_KEY-in-production-0123456789")), "SECRET_KEY")


def test_the_env_example_secret_key_refuses_to_start(tmp_path):
    assert_refused(manage(tmp_path, "check", **production(SECRET_KEY=example_value("SECRET_KEY"))), "SECRET_KEY")


def test_no_ca_key_passphrase_refuses_to_start(tmp_path):
    assert_refused(manage(tmp_path, "check", **production(CA_KEY_PASSPHRASE="")), "CA_KEY_PASSPHRASE")


def test_the_env_example_ca_key_passphrase_refuses_to_start(tmp_path):
    assert_refused(manage(tmp_path, "check", **production(CA_KEY_PASSPHRASE=example_value("CA_KEY_PASSPHRASE"))),
                   "CA_KEY_PASSPHRASE")


def test_the_wsgi_application_refuses_to_load_without_secrets(tmp_path):
    """What gunicorn loads: the refusal is at settings import, not in a command that may not run."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "DEBUG": "false", "SECRET_KEY": "", "CA_KEY_PASSPHRASE": "", "EMAIL_URL": SMTP}
    result = subprocess.run([sys.executable, "-c", "import mdmportal.wsgi"], cwd=ROOT, env=isolated(env),
                            capture_output=True, text=True, timeout=120)
    assert_refused(result, "SECRET_KEY")


# Development: ./serve sets DEBUG=true and nothing else

def test_serve_with_nothing_configured_still_starts(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true")
    assert result.returncode == 0, result.stdout + result.stderr


# check --deploy: errors, not warnings (with DEBUG on, where the settings do start)

@pytest.mark.parametrize("variable", ["SECRET_KEY", "CA_KEY_PASSPHRASE"])
def test_check_deploy_reports_an_env_example_placeholder_as_an_error(tmp_path, variable):
    result = manage(tmp_path, "check", "--deploy", **production(DEBUG="true", **{variable: example_value(variable)}))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # the default --fail-level is ERROR
    assert variable in output and "ERRORS:" in output, output


# Email: outside DEBUG, not to the console

def test_no_email_url_outside_debug_is_a_system_check_error(tmp_path):
    variables = production()
    del variables["EMAIL_URL"]
    result = manage(tmp_path, "check", **variables)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "EMAIL_URL" in output and "ERRORS:" in output, output


def test_console_email_outside_debug_is_a_system_check_error(tmp_path):
    result = manage(tmp_path, "check", **production(EMAIL_URL="consolemail://"))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "EMAIL_URL" in output and "ERRORS:" in output, output


def test_console_email_with_debug_is_fine(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", EMAIL_URL="consolemail://")
    assert result.returncode == 0, result.stdout + result.stderr
