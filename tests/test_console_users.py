from django.contrib.auth.models import Group
from django.core import mail

from accounts.models import AuditEvent, User
from accounts.roles import ENROLLMENT_ADMIN, FULL_ADMIN, HELPDESK
from invitations.models import Invitation
from tests.console_fixtures import action, messages_of
from tests.factories import InvitationFactory, UserFactory

USERS = "/admin/accounts/user/"
ADD = "/admin/accounts/user/add/"


def change_url(user):
    return f"/admin/accounts/user/{user.pk}/change/"


def new_user(**fields):
    return {"email": "carol@example.com", "mdm_username": "", "display_name": "Carol", "language": "fr",
            "device_limit": "3", "send_invitation": "on", "_save": "Save", **fields}


def user_form(user, **fields):
    data = {"email": user.email, "mdm_username": user.mdm_username or "", "display_name": user.display_name,
            "language": user.language, "device_limit": str(user.device_limit), "_save": "Save"}
    if user.is_active:
        data["is_active"] = "on"
    return {**data, **fields}


# The list

def test_users_list_redirects_anonymous(client, db):
    assert client.get(USERS)["Location"].startswith("/admin/login/")


def test_users_list_refuses_users_without_console_access(client, alice):
    client.force_login(alice)
    assert client.get(USERS)["Location"].startswith("/admin/login/")


def test_users_list_shows_each_users_details_and_latest_invitation_status(console, organisation):
    carol = UserFactory(email="carol@example.com", display_name="Carol", mdm_username="CORP\\carol",
                        language="fr", device_limit=2)
    InvitationFactory(user=carol, revoked=True)
    InvitationFactory(user=carol)

    response = console.get(USERS)

    assert response.status_code == 200
    html = response.content.decode()
    for text in ["carol@example.com", "Carol", "CORP\\carol", "Français", ">2<", ">queued<"]:
        assert text in html


def test_users_list_searches_by_email_name_and_mdm_username(console, alice, bob):
    UserFactory(email="zed@example.com", mdm_username="CORP\\zed")
    response = console.get(USERS, {"q": "corp\\zed"})
    assert [u.email for u in response.context["cl"].result_list] == ["zed@example.com"]
    response = console.get(USERS, {"q": "Alice"})
    assert [u.email for u in response.context["cl"].result_list] == ["alice@example.com"]


def test_users_list_filters_never_invited_users(console, alice, bob):
    InvitationFactory(user=alice)
    response = console.get(USERS, {"invitation": "none", "is_staff__exact": "0"})
    assert [u.email for u in response.context["cl"].result_list] == ["bob@example.com"]


# Adding one user

def test_add_user_page_refuses_helpdesk(client, helpdesk):
    client.force_login(helpdesk)
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, new_user()).status_code == 403
    assert not User.objects.filter(email="carol@example.com").exists()


def test_helpdesk_sees_no_add_button_nor_import_link(client, helpdesk):
    client.force_login(helpdesk)
    html = client.get(USERS).content.decode()
    assert ADD not in html
    assert "/admin/accounts/user/import/" not in html


def test_add_user_with_invitation_box_sends_the_invitation(console, organisation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(ADD, new_user(), REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302
    carol = User.objects.get(email="carol@example.com")
    assert (carol.display_name, carol.language, carol.device_limit) == ("Carol", "fr", 3)
    assert not carol.has_usable_password()
    assert carol.invitations.get().status == Invitation.Status.SENT
    assert [m.to for m in mail.outbox] == [["carol@example.com"]]
    assert "/EnrollmentServer/" in mail.outbox[0].body
    added = AuditEvent.objects.get(action="user.added")
    assert (added.actor.email, added.target_label, added.ip) == ("root@example.com", "carol@example.com", "203.0.113.7")
    assert AuditEvent.objects.filter(action="invitation.sent", ip="203.0.113.7").count() == 1


def test_add_user_without_invitation_box_sends_nothing(console, organisation, django_capture_on_commit_callbacks):
    data = new_user()
    del data["send_invitation"]
    with django_capture_on_commit_callbacks(execute=True):
        console.post(ADD, data)
    assert User.objects.filter(email="carol@example.com").exists()
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_add_user_rejects_an_existing_email_in_other_case(console, alice):
    response = console.post(ADD, new_user(email="ALICE@example.com"))
    assert response.status_code == 200
    assert "A user with this email already exists." in response.context["adminform"].form.errors["email"]
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_add_user_rejects_a_taken_mdm_username(console, db):
    UserFactory(mdm_username="CORP\\carol")
    response = console.post(ADD, new_user(mdm_username="corp\\carol"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["mdm_username"]
    assert not User.objects.filter(email="carol@example.com").exists()


def test_add_user_rejects_unknown_language_and_bad_device_limit(console, db):
    response = console.post(ADD, new_user(language="de", device_limit="-1"))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"language", "device_limit"}
    assert not User.objects.filter(email="carol@example.com").exists()


def test_enrollment_admin_adds_users_and_sends_invitations(client, enrollment_admin, organisation,
                                                           django_capture_on_commit_callbacks):
    client.force_login(enrollment_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD, new_user())
    assert response.status_code == 302
    assert len(mail.outbox) == 1


# The "Send invitation" action

def test_send_invitation_action_invites_each_selected_user(console, alice, bob, organisation,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(USERS, action("send_invitations", alice, bob, confirmed=True), follow=True)

    assert "Invitations queued for 2 users." in messages_of(response)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]
    assert Invitation.objects.filter(status=Invitation.Status.SENT).count() == 2


def test_send_invitation_action_skips_inactive_users(console, alice, bob, organisation,
                                                     django_capture_on_commit_callbacks):
    bob.is_active = False
    bob.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(USERS, action("send_invitations", alice, bob, confirmed=True), follow=True)
    assert "1 inactive user was not invited." in messages_of(response)
    assert [m.to[0] for m in mail.outbox] == ["alice@example.com"]


def test_send_invitation_action_is_hidden_from_and_refused_to_helpdesk(client, helpdesk, alice,
                                                                        django_capture_on_commit_callbacks):
    client.force_login(helpdesk)
    assert b"send_invitations" not in client.get(USERS).content

    with django_capture_on_commit_callbacks(execute=True):
        client.post(USERS, action("send_invitations", alice, confirmed=True))

    assert not Invitation.objects.exists()
    assert mail.outbox == []


# Changing users, console access and roles

def test_full_admin_grants_console_access_with_a_role(client, full_admin, alice):
    client.force_login(full_admin)
    response = client.post(change_url(alice), user_form(alice, is_staff="on", role=ENROLLMENT_ADMIN),
                           REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.is_staff
    assert list(alice.groups.values_list("name", flat=True)) == [ENROLLMENT_ADMIN]
    changed = AuditEvent.objects.get(action="user.changed")
    assert changed.ip == "198.51.100.4"
    assert changed.actor == full_admin
    assert "Role" in str(changed.detail)


def test_full_admin_changes_a_role_and_the_old_one_is_removed(client, full_admin, enrollment_admin):
    client.force_login(full_admin)
    client.post(change_url(enrollment_admin), user_form(enrollment_admin, is_staff="on", role=HELPDESK))
    assert list(enrollment_admin.groups.values_list("name", flat=True)) == [HELPDESK]


def test_console_access_needs_a_role(client, full_admin, alice):
    client.force_login(full_admin)
    response = client.post(change_url(alice), user_form(alice, is_staff="on", role=""))
    assert "role" in response.context["adminform"].form.errors
    alice.refresh_from_db()
    assert not alice.is_staff


def test_full_admin_cannot_remove_own_console_access(client, full_admin):
    client.force_login(full_admin)
    response = client.post(change_url(full_admin), user_form(full_admin, role=FULL_ADMIN))
    assert "is_staff" in response.context["adminform"].form.errors
    full_admin.refresh_from_db()
    assert full_admin.is_staff


def test_enrollment_admin_cannot_grant_console_access(client, enrollment_admin, alice):
    client.force_login(enrollment_admin)
    page = client.get(change_url(alice))
    assert "is_staff" not in page.context["adminform"].form.fields

    response = client.post(change_url(alice), user_form(alice, display_name="Alice M", is_staff="on",
                                                        role=FULL_ADMIN))

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.display_name == "Alice M"
    assert not alice.is_staff
    assert not alice.groups.exists()


def test_enrollment_admin_cannot_change_an_administrator(client, enrollment_admin, full_admin):
    client.force_login(enrollment_admin)
    response = client.post(change_url(full_admin), user_form(full_admin, email="enroller2@example.com"))
    assert response.status_code == 403
    full_admin.refresh_from_db()
    assert full_admin.email == "full@example.com"


def test_helpdesk_sees_a_user_but_cannot_change_it(client, helpdesk, alice):
    client.force_login(helpdesk)
    assert client.get(change_url(alice)).status_code == 200
    response = client.post(change_url(alice), user_form(alice, display_name="Mallory"))
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_deleting_a_user_is_audited(console, alice):
    response = console.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"}, REMOTE_ADDR="192.0.2.9")
    assert response.status_code == 302
    assert not User.objects.filter(email="alice@example.com").exists()
    deleted = AuditEvent.objects.get(action="user.deleted")
    assert (deleted.target_label, deleted.ip) == ("alice@example.com", "192.0.2.9")


def test_roles_are_not_edited_by_hand(console):
    assert console.get("/admin/auth/group/").status_code == 404
    assert Group.objects.filter(name__in=[FULL_ADMIN, ENROLLMENT_ADMIN, HELPDESK]).count() == 3
