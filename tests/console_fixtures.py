"""Personas and settings shared by the console tests (tests/test_console_*.py).

Import the fixtures a module uses by name; pytest finds them in the module's namespace.
"""
import copy
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from invitations.roles import ENROLLMENT_ADMIN, FULL_ADMIN, HELPDESK
from tests.factories import UserFactory

PLACEHOLDER_TEMPLATES = Path(__file__).parent / "templates"


@pytest.fixture(autouse=True)
def email_templates(settings):
    """Placeholder invitation emails, looked up after the real templates/ so those win when present."""
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [*templates[0]["DIRS"], PLACEHOLDER_TEMPLATES]
    settings.TEMPLATES = templates
    # Production default is to redirect http to https; the test client speaks http.
    settings.SECURE_SSL_REDIRECT = False


def administrator(role, email):
    user = UserFactory(email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def full_admin(db):
    """A full administrator through the role, not a superuser."""
    return administrator(FULL_ADMIN, "full@example.com")


@pytest.fixture
def enrollment_admin(db):
    return administrator(ENROLLMENT_ADMIN, "enroller@example.com")


@pytest.fixture
def helpdesk(db):
    return administrator(HELPDESK, "helpdesk@example.com")


@pytest.fixture
def console(client, admin_user):
    """A test client signed in to the console as the superuser."""
    client.force_login(admin_user)
    return client


def action(name, *objects):
    """The POST body of a changelist action on `objects`."""
    return {"action": name, "_selected_action": [obj.pk for obj in objects]}


def messages_of(response):
    return [str(message) for message in response.context["messages"]] if response.context else []
