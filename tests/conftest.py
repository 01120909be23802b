import pytest

from tests.factories import AdminFactory, OrganisationFactory, UserFactory


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def plain_http(settings):
    """Production redirects http to https; the test client speaks plain http."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def organisation(db):
    return OrganisationFactory()


@pytest.fixture
def admin_user(db):
    return AdminFactory(email="root@example.com")


@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com", display_name="Alice")


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com", display_name="Bob")
