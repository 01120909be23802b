import pytest

from accounts import roles
from tests.api_helpers import client_with_token, make_token
from tests.factories import AdminFactory, OrganisationFactory, UserFactory, role_admin
from tests.services import celery_worker, live_tasks, plan, postgres, redis_url, smtp_server  # noqa: F401


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language: a request in French leaves French active in the thread
    (LocaleMiddleware activates the request's language and nothing resets it after the response)."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain HTTP; in production nginx terminates TLS (X-Forwarded-Proto)."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def in_process_tasks(request, settings):
    """Tasks run in-process unless the test asks for the real worker (`live_tasks`). A per-test
    local-memory cache keeps tests independent even when REDIS_URL is set."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Local-memory caches with the same LOCATION share their data across tests: start empty.
    from django.core.cache import cache

    cache.clear()
    if "live_tasks" in request.fixturenames:
        yield
        return
    from mdmportal.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.fixture
def http_live_server(settings, transactional_db):
    """A live server on plain HTTP (the test client's settings), for real clients: the device simulator,
    the browser tests.

    pytest-django's `live_server` is session-wide and builds its middleware stack when it starts, so
    it would keep the HTTPS redirect and secure-only cookies of the default settings; this one starts
    after the plain-HTTP settings below are in place."""
    from django.core.servers.basehttp import ThreadedWSGIServer
    from pytest_django.live_server_helper import LiveServer

    class WaitingWSGIServer(ThreadedWSGIServer):
        # Join the request threads on stop (socketserver's block_on_close): a browser's kept-alive
        # connection ends a moment after its page closes, and its thread would then touch the test
        # database (an in-memory SQLite connection shared with the server) after the test.
        daemon_threads = False

    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SESSION_COOKIE_SECURE = False
    server = LiveServer("localhost:0", start=False)
    server.thread.server_class = WaitingWSGIServer
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def full_admin(db):
    """A full administrator through the role, not a superuser."""
    return role_admin(roles.FULL_ADMIN, "full@example.com")


@pytest.fixture
def enrollment_admin(db):
    return role_admin(roles.ENROLLMENT_ADMIN, "enroller@example.com")


@pytest.fixture
def helpdesk(db):
    return role_admin(roles.HELPDESK, "helpdesk@example.com")


@pytest.fixture
def console(client, admin_user):
    """A test client signed in to the console as the superuser."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def full_api(full_admin):
    return client_with_token(make_token(full_admin))


@pytest.fixture
def enrollment_api(enrollment_admin):
    return client_with_token(make_token(enrollment_admin))


@pytest.fixture
def helpdesk_api(helpdesk):
    return client_with_token(make_token(helpdesk))
