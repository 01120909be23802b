import pytest
from django.contrib.auth.models import Permission
from django.core import mail

from accounts.models import AuditEvent, Organisation, RetiredEnrollmentKey
from invitations.models import InvitationEmail, UrlRotation
from tests.api_helpers import client_with_token, make_token
from tests.factories import InvitationFactory, UrlRotationFactory, UserFactory



def test_enrollment_url_shows_the_current_url_and_version(full_api, organisation):
    body = full_api.get("/api/v1/enrollment-url/").json()

    assert body == {"url": organisation.enrollment_url, "version": 1}
    assert body["url"].startswith("https://enterpriseenrollment.contoso.com/EnrollmentServer/")


def test_regenerate_rotates_the_url_and_retires_the_old_key(full_api, full_admin, organisation):
    old_url, old_key = organisation.enrollment_url, organisation.enrollment_key

    response = full_api.post("/api/v1/enrollment-url/regenerate/", REMOTE_ADDR="192.0.2.9")

    assert response.status_code == 202
    assert response.json()["version"] == 2
    assert response.json()["started_by"] == full_admin.email
    current = full_api.get("/api/v1/enrollment-url/").json()
    assert current["version"] == 2 and current["url"] != old_url
    assert Organisation.get().key_state(old_key) == "retired"
    event = AuditEvent.objects.get(action="enrollment_url.regenerated")
    assert (event.actor, event.ip, event.detail) == (full_admin, "192.0.2.9", {"version": 2})


def test_regenerate_reissues_pending_invitations_and_reports_progress(
        full_api, organisation, django_capture_on_commit_callbacks):
    pending = InvitationFactory.create_batch(2)
    InvitationFactory(revoked=True)

    with django_capture_on_commit_callbacks(execute=True):
        rotation_id = full_api.post("/api/v1/enrollment-url/regenerate/").json()["id"]

    progress = full_api.get(f"/api/v1/enrollment-url/rotations/{rotation_id}/").json()
    assert (progress["total"], progress["done"], progress["percent"]) == (2, 2, 100)
    assert (progress["sent"], progress["failed"], progress["waiting"], progress["state"]) == (2, 0, 0, "finished")
    assert progress["finished_at"] is not None
    assert InvitationEmail.objects.filter(reason=InvitationEmail.Reason.REISSUE).count() == 2
    assert sorted(message.to[0] for message in mail.outbox) == sorted(i.user.email for i in pending)
    assert Organisation.get().enrollment_url in mail.outbox[0].body


def test_rotation_progress_of_a_running_rotation(full_api):
    rotation = UrlRotationFactory(total=400, done=100)

    body = full_api.get(f"/api/v1/enrollment-url/rotations/{rotation.pk}/").json()

    assert (body["total"], body["done"], body["percent"], body["finished_at"]) == (400, 100, 25, None)
    assert (body["sent"], body["waiting"], body["state"]) == (0, 0, "queuing")


def test_rotations_list_shows_the_latest_first(full_api):
    first, second = UrlRotationFactory(version=2), UrlRotationFactory(version=3)

    results = full_api.get("/api/v1/enrollment-url/rotations/").json()["results"]

    assert [item["id"] for item in results] == [second.pk, first.pk]


def test_rotation_progress_of_unknown_id_is_404(full_api):
    assert full_api.get("/api/v1/enrollment-url/rotations/999999/").status_code == 404


def test_regenerate_refuses_get_and_changes_nothing(full_api, organisation):
    response = full_api.get("/api/v1/enrollment-url/regenerate/")

    assert response.status_code == 405
    assert not RetiredEnrollmentKey.objects.exists()
    assert not UrlRotation.objects.exists()


def staff_with_perms(email, *codenames):
    user = UserFactory(email=email, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["accounts", "invitations"],
                                                        codename__in=codenames))
    return client_with_token(make_token(user))


def test_regenerate_needs_the_regenerate_permission_not_add_organisation(organisation):
    editor = staff_with_perms("editor@example.com", "view_organisation", "add_organisation", "change_organisation")
    rotator = staff_with_perms("rotator@example.com", "regenerate_enrollment_url")

    assert editor.post("/api/v1/enrollment-url/regenerate/").status_code == 403
    assert rotator.post("/api/v1/enrollment-url/regenerate/").status_code == 202
    assert Organisation.get().enrollment_url_version == 2
