import pytest
from django.core import mail

from accounts.models import AuditEvent, Organisation, User
from invitations.models import Invitation

START = "/admin/getting-started/"
ENROLLMENT = "/admin/getting-started/enrollment/"
USERS = "/admin/getting-started/users/"
DONE = "/admin/getting-started/done/"


def walk_to_users_step(client, name="Contoso", host="enterpriseenrollment.contoso.com"):
    assert client.post(START, {"name": name})["Location"] == ENROLLMENT
    assert client.post(ENROLLMENT, {"host": host})["Location"] == USERS


def test_wizard_redirects_anonymous(client, db):
    assert client.get(START)["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("persona", ["enrollment_admin", "helpdesk"])
def test_wizard_is_for_full_administrators_only(client, request, persona, organisation):
    client.force_login(request.getfixturevalue(persona))
    for url in [START, ENROLLMENT, USERS, DONE]:
        assert client.get(url).status_code == 403
    assert client.post(START, {"name": "Hijacked"}).status_code == 403
    assert Organisation.get().name == "Contoso"


def test_wizard_sets_up_the_organisation_and_invites_the_first_users(client, full_admin, db,
                                                                    django_capture_on_commit_callbacks):
    client.force_login(full_admin)
    assert client.get(START).status_code == 200
    walk_to_users_step(client, name="Fabrikam", host="https://MDM.fabrikam.fr/")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(USERS, {
            "users": "alice@fabrikam.fr, Alice Martin, fr\r\n\r\nbob@fabrikam.fr\r\n\"carol@fabrikam.fr\", \"Dupont, Carol\"",
            "send_invitations": "on",
        }, REMOTE_ADDR="203.0.113.9")

    assert response["Location"] == DONE
    organisation = Organisation.get()
    assert (organisation.name, organisation.enrollment_base_url) == ("Fabrikam", "https://mdm.fabrikam.fr")
    assert organisation.setup_completed_at is not None
    alice = User.objects.get(email="alice@fabrikam.fr")
    assert (alice.display_name, alice.language) == ("Alice Martin", "fr")
    assert User.objects.get(email="carol@fabrikam.fr").display_name == "Dupont, Carol"
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@fabrikam.fr", "bob@fabrikam.fr", "carol@fabrikam.fr"]
    assert all("https://mdm.fabrikam.fr/EnrollmentServer/" in m.body for m in mail.outbox)
    assert AuditEvent.objects.get(action="organisation.set_up").ip == "203.0.113.9"
    assert AuditEvent.objects.filter(action="user.added", ip="203.0.113.9").count() == 3

    summary = client.get(DONE)
    assert summary.status_code == 200
    html = summary.content.decode()
    assert organisation.enrollment_url in html
    assert "bob@fabrikam.fr" in html
    assert 'href="/admin/accounts/user/"' in html
    assert b'href="/admin/getting-started/"' not in client.get("/admin/").content


def test_wizard_can_finish_without_users_or_invitations(client, full_admin, organisation,
                                                        django_capture_on_commit_callbacks):
    client.force_login(full_admin)
    walk_to_users_step(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(USERS, {"users": ""})["Location"] == DONE
    assert Organisation.get().setup_completed_at is not None
    assert not Invitation.objects.exists()
    assert b"No users were added yet." in client.get(DONE).content


def test_wizard_adds_users_without_inviting_when_the_box_is_unchecked(client, full_admin, organisation,
                                                                       django_capture_on_commit_callbacks):
    client.force_login(full_admin)
    walk_to_users_step(client)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(USERS, {"users": "dave@contoso.com"})
    assert User.objects.filter(email="dave@contoso.com").exists()
    assert mail.outbox == []


def test_wizard_rejects_an_empty_organisation_name(client, full_admin, organisation):
    client.force_login(full_admin)
    response = client.post(START, {"name": "  "})
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    assert b"nothing has been saved" in response.content


@pytest.mark.parametrize("host", ["http://mdm.contoso.com", "not a host", "mdm.contoso.com/EnrollmentServer",
                                  "https://", "contoso"])
def test_wizard_rejects_a_bad_enrollment_host(client, full_admin, organisation, host):
    client.force_login(full_admin)
    client.post(START, {"name": "Changed"})
    response = client.post(ENROLLMENT, {"host": host})
    assert response.status_code == 200
    assert "host" in response.context["form"].errors
    assert Organisation.get().enrollment_base_url == "https://enterpriseenrollment.contoso.com"
    assert Organisation.get().name == "Contoso"


def test_wizard_reports_bad_user_lines_and_writes_nothing(client, full_admin, organisation, alice,
                                                           django_capture_on_commit_callbacks):
    client.force_login(full_admin)
    walk_to_users_step(client, name="Changed")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(USERS, {
            "users": "dave@contoso.com\nnot-an-email\nalice@example.com\nerin@contoso.com, Erin, de\ndave@contoso.com",
            "send_invitations": "on",
        })

    assert response.status_code == 200
    errors = response.context["form"].errors["users"]
    assert errors == [
        "Line 2 (not-an-email): “not-an-email” is not a valid email",
        "Line 3 (alice@example.com): a user with this email already exists",
        "Line 4 (erin@contoso.com): unknown language “de” (use fr or en)",
        "Line 5 (dave@contoso.com): this email is already on line 1",
    ]
    assert not User.objects.filter(email__endswith="@contoso.com").exists()
    assert mail.outbox == []
    organisation = Organisation.get()
    assert (organisation.name, organisation.setup_completed_at) == ("Contoso", None)


def test_wizard_sends_skipped_steps_back_to_the_start(client, full_admin, organisation):
    client.force_login(full_admin)
    assert client.get(ENROLLMENT)["Location"] == START
    assert client.post(USERS, {"users": "dave@contoso.com"})["Location"] == START
    assert client.get(DONE)["Location"] == START
    assert not User.objects.filter(email="dave@contoso.com").exists()


def test_wizard_prefills_the_current_organisation(console, organisation):
    response = console.get(START)
    assert response.context["form"].initial == {"name": "Contoso"}
    console.post(START, {"name": "Contoso"})
    assert console.get(ENROLLMENT).context["form"].initial == {"host": "https://enterpriseenrollment.contoso.com",
                                                               "auth_policy": "onpremise"}
