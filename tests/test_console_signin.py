"""The console's sign-in is locked per account as well as per address (django-axes)."""
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, AdminFactory


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return 3


def test_console_signin_locks_the_account_after_repeated_failures_from_several_addresses(client, db, limit):
    admin = AdminFactory(email="ops@example.com")
    url = reverse("admin:login")
    for i in range(limit):
        client.post(url, {"username": "OPS@example.com", "password": "wrong"}, REMOTE_ADDR=f"10.0.0.{i}")

    response = client.post(url, {"username": admin.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.99")

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_console_signin_works_with_the_right_password(client, db, limit):
    admin = AdminFactory(email="ops2@example.com")
    response = client.post(reverse("admin:login"), {"username": admin.email, "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(admin.pk)
