import pytest

from tests.factories import AdminFactory, OrganisationFactory, UserFactory
from tests.services import celery_worker, live_tasks, postgres, redis_url, smtp_server  # noqa: F401


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain HTTP; in production nginx terminates TLS (X-Forwarded-Proto)."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def in_process_tasks(request, settings):
    """Tasks run in-process unless the test asks for the real worker (`live_tasks`). A per-test
    local-memory cache keeps tests independent even when REDIS_URL is set."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if "live_tasks" in request.fixturenames:
        yield
        return
    from mdmportal.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


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
