"""Fixtures shared by the API tests (loaded with `pytest_plugins`): administrators in each role and
API clients authenticated with real tokens made by `create_api_token`."""
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.test import APIClient

from invitations import roles
from tests.factories import UserFactory

# Placeholder invitation emails, used only when the real ones are not in templates/emails/.
TEST_TEMPLATES = Path(__file__).parent / "templates"


@pytest.fixture
def email_templates(settings):
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], TEST_TEMPLATES]}]


def make_token(user, *, rotate=False):
    out = StringIO()
    call_command("create_api_token", user.email, *(["--rotate"] if rotate else []), stdout=out)
    return out.getvalue().strip()


class HttpsAPIClient(APIClient):
    """Speaks https like real API clients: outside DEBUG the portal redirects http to https."""

    def generic(self, method, path, data="", content_type="application/octet-stream", secure=True, **extra):
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def client_with_token(key):
    client = HttpsAPIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def make_role_admin(role, email):
    user = UserFactory(email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def full_admin(db):
    return make_role_admin(roles.FULL_ADMIN, "full.admin@example.com")


@pytest.fixture
def enrollment_admin(db):
    return make_role_admin(roles.ENROLLMENT_ADMIN, "enrollment.admin@example.com")


@pytest.fixture
def helpdesk(db):
    return make_role_admin(roles.HELPDESK, "helpdesk@example.com")


@pytest.fixture
def full_api(full_admin):
    return client_with_token(make_token(full_admin))


@pytest.fixture
def enrollment_api(enrollment_admin):
    return client_with_token(make_token(enrollment_admin))


@pytest.fixture
def helpdesk_api(helpdesk):
    return client_with_token(make_token(helpdesk))
