from unittest.mock import patch

import pytest
from django.core import mail

from accounts.models import AuditEvent, User
from invitations import api
from invitations.models import Invitation
from tests.factories import AdminFactory, UserFactory


NEW_USER = {
    "email": "Carol@Example.com",
    "mdm_username": "CORP\\carol",
    "display_name": "Carol",
    "language": "fr",
    "device_limit": 3,
}


def test_users_list_is_paginated_and_ordered_by_email(full_api, alice, bob):
    response = full_api.get("/api/v1/users/")

    assert response.status_code == 200
    emails = [user["email"] for user in response.json()["results"]]
    assert emails == sorted(emails)
    assert {"alice@example.com", "bob@example.com"} <= set(emails)
    assert response.json()["count"] == User.objects.count()


def test_users_list_filters_by_email_whatever_the_case(full_api, alice, bob):
    response = full_api.get("/api/v1/users/", {"email": "ALICE@example.com"})

    assert [user["email"] for user in response.json()["results"]] == ["alice@example.com"]


def test_users_list_searches_display_name_email_and_mdm_username(full_api, alice, bob):
    UserFactory(email="dave@example.com", mdm_username="CORP\\dave.smith")

    by_name = full_api.get("/api/v1/users/", {"search": "alic"}).json()["results"]
    by_username = full_api.get("/api/v1/users/", {"search": "dave.smith"}).json()["results"]

    assert [user["email"] for user in by_name] == ["alice@example.com"]
    assert [user["email"] for user in by_username] == ["dave@example.com"]


def test_user_retrieve_shows_the_enrollment_username(full_api):
    user = UserFactory(email="erin@example.com", mdm_username="CORP\\erin", language="fr", device_limit=2)

    body = full_api.get(f"/api/v1/users/{user.pk}/").json()

    assert body["email"] == "erin@example.com"
    assert body["enrollment_username"] == "CORP\\erin"
    assert (body["language"], body["device_limit"], body["is_staff"]) == ("fr", 2, False)
    assert "password" not in body


def test_user_retrieve_of_unknown_id_is_404(full_api):
    assert full_api.get("/api/v1/users/999999/").status_code == 404


def test_user_create_saves_the_user_without_a_password_and_audits_it(full_api, full_admin):
    response = full_api.post("/api/v1/users/", NEW_USER, format="json", REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["email"] == "carol@example.com"
    assert body["invitation"] is None
    user = User.objects.get(pk=body["id"])
    assert (user.mdm_username, user.language, user.device_limit) == ("CORP\\carol", "fr", 3)
    assert not user.has_usable_password()
    assert not user.is_staff
    event = AuditEvent.objects.get(action="user.created")
    assert (event.actor, event.target_id, event.ip) == (full_admin, str(user.pk), "203.0.113.7")
    assert event.detail["email"] == "carol@example.com"
    assert not Invitation.objects.filter(user=user).exists()


def test_user_create_cannot_make_an_administrator(full_api):
    response = full_api.post("/api/v1/users/", {"email": "sneaky@example.com", "is_staff": True}, format="json")

    assert response.status_code == 201
    assert not User.objects.get(email="sneaky@example.com").is_staff


def test_user_create_with_send_invitation_invites_and_emails_the_user(
        full_api, full_admin, organisation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = full_api.post("/api/v1/users/", {**NEW_USER, "send_invitation": True}, format="json")

    assert response.status_code == 201, response.json()
    invitation = Invitation.objects.get(user__email="carol@example.com")
    assert response.json()["invitation"]["id"] == invitation.pk
    assert invitation.created_by == full_admin
    assert [message.to for message in mail.outbox] == [["carol@example.com"]]
    assert organisation.enrollment_url in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="invitation.sent", actor=full_admin).exists()


def test_user_create_leaves_no_user_behind_when_the_invitation_fails(full_api):
    with patch("invitations.api.sending.invite", autospec=True, side_effect=RuntimeError("db gone")):
        with pytest.raises(RuntimeError):
            full_api.post("/api/v1/users/", {**NEW_USER, "send_invitation": True}, format="json")

    assert not User.objects.filter(email="carol@example.com").exists()
    assert not AuditEvent.objects.filter(action="user.created").exists()


def test_user_create_rejects_a_duplicate_email_whatever_the_case(full_api, alice):
    response = full_api.post("/api/v1/users/", {**NEW_USER, "email": "ALICE@example.com"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"email": ["A user with this email already exists."]}
    assert User.objects.filter(email="alice@example.com").count() == 1
    assert not AuditEvent.objects.filter(action="user.created").exists()


def test_user_create_rejects_an_unknown_language(full_api):
    response = full_api.post("/api/v1/users/", {**NEW_USER, "language": "de"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["language"]
    assert not User.objects.filter(email="carol@example.com").exists()


def test_user_create_rejects_an_mdm_username_already_taken(full_api):
    UserFactory(email="other@example.com", mdm_username="CORP\\Carol")

    response = full_api.post("/api/v1/users/", NEW_USER, format="json")

    assert response.status_code == 400
    assert response.json() == {"mdm_username": ["This MDM username is already taken."]}
    assert not User.objects.filter(email="carol@example.com").exists()


def test_user_create_rejects_an_mdm_username_that_is_another_users_email(full_api, alice):
    response = full_api.post("/api/v1/users/", {**NEW_USER, "mdm_username": "Alice@example.com"}, format="json")

    assert response.status_code == 400
    assert "mdm_username" in response.json()


def test_user_create_rejects_missing_email_and_bad_device_limit(full_api):
    response = full_api.post("/api/v1/users/", {"display_name": "Nobody", "device_limit": -1}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"email", "device_limit"}
    assert not User.objects.filter(display_name="Nobody").exists()


def test_user_create_stores_a_blank_mdm_username_as_none(full_api):
    for email in ("one@example.com", "two@example.com"):
        response = full_api.post("/api/v1/users/", {"email": email, "mdm_username": "  "}, format="json")
        assert response.status_code == 201, response.json()

    assert list(User.objects.filter(email__in=["one@example.com", "two@example.com"])
                .values_list("mdm_username", flat=True)) == [None, None]


def test_user_create_answers_a_race_on_the_email_with_400(full_api, alice):
    # Both requests pass validation; the database's unique constraint catches the second.
    with patch.object(api.UserSerializer, "validate_email", autospec=True,
                      side_effect=lambda serializer, value: value.lower()):
        response = full_api.post("/api/v1/users/", {"email": "alice@example.com"}, format="json")

    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert User.objects.filter(email="alice@example.com").count() == 1


def test_user_partial_update_changes_fields_and_audits_the_changes(full_api, full_admin, alice):
    response = full_api.patch(f"/api/v1/users/{alice.pk}/", {"language": "fr", "device_limit": 1}, format="json")

    assert response.status_code == 200, response.json()
    alice.refresh_from_db()
    assert (alice.language, alice.device_limit) == ("fr", 1)
    event = AuditEvent.objects.get(action="user.updated")
    assert event.actor == full_admin
    assert event.detail["changes"] == {"language": ["en", "fr"], "device_limit": [5, 1]}


def test_user_update_keeps_the_own_email_and_mdm_username(full_api, alice):
    alice.mdm_username = "CORP\\alice"
    alice.save()

    response = full_api.put(f"/api/v1/users/{alice.pk}/", {
        "email": "Alice@example.com", "mdm_username": "corp\\alice", "display_name": "Alice B.",
        "language": "en", "device_limit": 5, "is_active": True,
    }, format="json")

    assert response.status_code == 200, response.json()
    alice.refresh_from_db()
    assert (alice.email, alice.mdm_username, alice.display_name) == ("alice@example.com", "corp\\alice", "Alice B.")


def test_user_update_without_changes_writes_no_audit_event(full_api, alice):
    response = full_api.patch(f"/api/v1/users/{alice.pk}/", {"display_name": alice.display_name}, format="json")

    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action="user.updated").exists()


def test_user_update_rejects_another_users_email(full_api, alice, bob):
    response = full_api.patch(f"/api/v1/users/{alice.pk}/", {"email": "bob@example.com"}, format="json")

    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"


def test_user_update_can_deactivate_a_user(full_api, alice):
    response = full_api.patch(f"/api/v1/users/{alice.pk}/", {"is_active": False}, format="json")

    assert response.status_code == 200
    alice.refresh_from_db()
    assert not alice.is_active


def test_enrollment_admin_cannot_change_an_administrators_account(enrollment_api):
    admin = AdminFactory(email="boss@example.com")

    response = enrollment_api.patch(f"/api/v1/users/{admin.pk}/", {"email": "mine@example.com"}, format="json")

    assert response.status_code == 403
    admin.refresh_from_db()
    assert admin.email == "boss@example.com"


def test_full_admin_can_change_an_administrators_account(full_api):
    admin = AdminFactory(email="boss@example.com")

    response = full_api.patch(f"/api/v1/users/{admin.pk}/", {"display_name": "The Boss"}, format="json")

    assert response.status_code == 200


def test_users_cannot_be_deleted_through_the_api(full_api, alice):
    assert full_api.delete(f"/api/v1/users/{alice.pk}/").status_code == 405
    assert User.objects.filter(pk=alice.pk).exists()
