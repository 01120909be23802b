"""Fixtures shared by the API tests (loaded with `pytest_plugins`): administrators in each role and
API clients authenticated with their real tokens."""
from pathlib import Path

import pytest

from invitations import roles
from tests.api_helpers import client_with_token, make_role_admin, make_token

# Placeholder invitation emails, used only when the real ones are not in templates/emails/.
TEST_TEMPLATES = Path(__file__).parent / "templates"


@pytest.fixture
def email_templates(settings):
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], TEST_TEMPLATES]}]


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
