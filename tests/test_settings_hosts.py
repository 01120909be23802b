"""The host names the portal answers to by default follow its public addresses."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _allowed_hosts(**env):
    environment = {name: value for name, value in os.environ.items()
                   if name not in {"ALLOWED_HOSTS", "PORTAL_URL", "ENROLLMENT_URL"}}
    environment.update(MDMPORTAL_ENV_FILE="", DEBUG="true", DJANGO_SETTINGS_MODULE="mdmportal.settings", **env)
    done = subprocess.run(
        [sys.executable, "-c", "import json; from django.conf import settings; print(json.dumps(settings.ALLOWED_HOSTS))"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_setting_portal_url_alone_lets_the_portal_answer_by_that_name():
    hosts = _allowed_hosts(PORTAL_URL="http://pc.example.lan:8080", ENROLLMENT_URL="https://enroll.example.lan")
    assert hosts == ["127.0.0.1", "localhost", "testserver", "pc.example.lan", "enroll.example.lan"]


def test_an_explicit_allowed_hosts_is_taken_as_given():
    assert _allowed_hosts(PORTAL_URL="http://pc.example.lan:8080", ALLOWED_HOSTS="portal.example.com") == [
        "portal.example.com"]
