"""Each role against each endpoint: the API enforces the console's permissions.

Helpdesk reads everything and writes nothing; enrollment administrators manage users and invitations
but may not regenerate the enrollment URL; full administrators may do everything; users without
console access are refused (403) and requests without a valid token are unauthenticated (401).
"""
import pytest

from accounts.models import AuditEvent, Organisation, User
from invitations.models import Invitation
from tests.api_helpers import HttpsAPIClient, client_with_token, make_token
from tests.factories import InvitationFactory, UrlRotationFactory, UserFactory

pytestmark = pytest.mark.usefixtures("organisation")

READS = [
    "/api/v1/users/",
    "/api/v1/users/{user}/",
    "/api/v1/invitations/",
    "/api/v1/invitations/{invitation}/",
    "/api/v1/enrollment-url/",
    "/api/v1/enrollment-url/rotations/",
    "/api/v1/enrollment-url/rotations/{rotation}/",
    "/api/v1/users/export/",
    "/api/v1/audit-events/",
    "/api/v1/audit-events/export/",
]
USER_BODY = {"email": "target@example.com", "display_name": "Target", "language": "fr", "device_limit": 2,
             "is_active": True}
# (name, method, path, body, status when allowed)
WRITES = [
    ("create user", "post", "/api/v1/users/", {"email": "new@example.com"}, 201),
    ("replace user", "put", "/api/v1/users/{user}/", USER_BODY, 200),
    ("edit user", "patch", "/api/v1/users/{user}/", {"display_name": "Renamed"}, 200),
    ("send invitations", "post", "/api/v1/invitations/", {"users": ["{user}"]}, 201),
    ("resend", "post", "/api/v1/invitations/{invitation}/resend/", None, 200),
    ("revoke", "post", "/api/v1/invitations/{invitation}/revoke/", None, 200),
    ("regenerate URL", "post", "/api/v1/enrollment-url/regenerate/", None, 202),
]
ALLOWED_WRITES = {
    "full": {name for name, *_ in WRITES},
    "enrollment": {name for name, *_ in WRITES} - {"regenerate URL"},
    "helpdesk": set(),
}


@pytest.fixture
def objects(db):
    user = UserFactory(email="target@example.com")
    return {"user": user.pk, "invitation": InvitationFactory(user=user).pk, "rotation": UrlRotationFactory().pk}


@pytest.fixture
def api_for_role(full_api, enrollment_api, helpdesk_api):
    return {"full": full_api, "enrollment": enrollment_api, "helpdesk": helpdesk_api}


def fill(path, objects):
    return path.format(**objects)


def fill_body(body, objects):
    if body is None:
        return None
    return {key: [objects["user"]] if value == ["{user}"] else value for key, value in body.items()}


def snapshot():
    """What a refused write must leave untouched."""
    return (
        list(User.objects.order_by("pk").values_list("email", "display_name", "language")),
        list(Invitation.objects.order_by("pk").values_list("status", "expires_at")),
        Organisation.get().enrollment_url_version,
        AuditEvent.objects.exclude(action__startswith="api_token.").count(),
    )


@pytest.mark.parametrize("role", ["full", "enrollment", "helpdesk"])
@pytest.mark.parametrize("path", READS)
def test_every_role_can_read(api_for_role, objects, role, path):
    response = api_for_role[role].get(fill(path, objects))

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("role", ["full", "enrollment", "helpdesk"])
@pytest.mark.parametrize("name, method, path, body, allowed_status", WRITES, ids=[w[0] for w in WRITES])
def test_each_role_writes_only_what_it_may(api_for_role, objects, django_capture_on_commit_callbacks,
                                           role, name, method, path, body, allowed_status):
    before = snapshot()

    with django_capture_on_commit_callbacks(execute=True):
        response = getattr(api_for_role[role], method)(fill(path, objects), fill_body(body, objects), format="json")

    if name in ALLOWED_WRITES[role]:
        assert response.status_code == allowed_status, response.content
        assert AuditEvent.objects.filter(actor__isnull=False).exclude(action__startswith="api_token.").exists()
    else:
        assert response.status_code == 403, response.content
        assert snapshot() == before


@pytest.mark.parametrize("path", READS)
def test_users_without_console_access_are_refused_reads(objects, alice, path):
    alice.is_staff = True  # a token can only be made for staff...
    alice.save()
    key = make_token(alice)
    alice.is_staff = False  # ...who may later lose console access
    alice.save()

    response = client_with_token(key).get(fill(path, objects))

    assert response.status_code == 403


def test_staff_without_any_role_can_read_nothing(objects):
    bare = UserFactory(email="bare@example.com", is_staff=True)

    response = client_with_token(make_token(bare)).get("/api/v1/users/")

    assert response.status_code == 403


@pytest.mark.parametrize("name, method, path, body, allowed_status", WRITES, ids=[w[0] for w in WRITES])
def test_anonymous_requests_are_unauthenticated(objects, name, method, path, body, allowed_status):
    before = snapshot()

    response = getattr(HttpsAPIClient(), method)(fill(path, objects), fill_body(body, objects), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert snapshot() == before


@pytest.mark.parametrize("path", READS)
def test_a_wrong_token_is_unauthenticated(objects, path):
    response = client_with_token("0" * 40).get(fill(path, objects))

    assert response.status_code == 401

