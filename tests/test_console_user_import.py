import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent, User
from invitations.models import Invitation
from tests.console_fixtures import messages_of
from tests.factories import UserFactory

IMPORT = "/admin/accounts/user/import/"
GOOD = (
    "email,display_name,language,mdm_username,device_limit\n"
    "carol@example.com,Carol,fr,,2\n"
    "dave@example.com,Dave,en,CORP\\dave,\n"
)


def upload(content, send=True, name="users.csv"):
    data = {"file": SimpleUploadedFile(name, content if isinstance(content, bytes) else content.encode(), "text/csv")}
    if send:
        data["send_invitations"] = "on"
    return data


def results(response):
    report = response.context["report"]
    return [(row.line, row.email, row.errors) for row in report.rows]


def test_import_page_redirects_anonymous(client, db):
    assert client.get(IMPORT)["Location"].startswith("/admin/login/")


def test_import_page_refuses_helpdesk(client, helpdesk):
    client.force_login(helpdesk)
    assert client.get(IMPORT).status_code == 403
    assert client.post(IMPORT, upload(GOOD)).status_code == 403
    assert not User.objects.filter(email="carol@example.com").exists()


def test_import_page_is_linked_from_the_users_list_for_enrollment_admins(client, enrollment_admin):
    client.force_login(enrollment_admin)
    assert IMPORT.encode() in client.get("/admin/accounts/user/").content
    response = client.get(IMPORT)
    assert response.status_code == 200
    assert "send_invitations" in response.context["form"].fields


def test_import_adds_every_user_and_sends_their_invitations(console, organisation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(IMPORT, upload(GOOD), REMOTE_ADDR="203.0.113.8")

    assert response.status_code == 200
    assert response.context["report"].created
    assert results(response) == [(2, "carol@example.com", []), (3, "dave@example.com", [])]
    carol, dave = User.objects.get(email="carol@example.com"), User.objects.get(email="dave@example.com")
    assert (carol.display_name, carol.language, carol.device_limit, carol.mdm_username) == ("Carol", "fr", 2, None)
    assert (dave.language, dave.device_limit, dave.mdm_username) == ("en", 5, "CORP\\dave")
    assert not carol.has_usable_password()
    assert sorted(m.to[0] for m in mail.outbox) == ["carol@example.com", "dave@example.com"]
    assert AuditEvent.objects.filter(action="user.added", ip="203.0.113.8").count() == 2
    assert b"added, invitation queued" in response.content


def test_import_without_the_box_adds_users_without_inviting(console, organisation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        console.post(IMPORT, upload(GOOD, send=False))
    assert User.objects.filter(email__in=["carol@example.com", "dave@example.com"]).count() == 2
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_import_reads_excel_files_with_bom_crlf_quotes_and_any_column_order(console, organisation):
    content = (
        "\ufeffEmail;Display Name;device_limit\r\n"
        '"carol@example.com";"Martin; Carol ""CJ""";1\r\n'
        "\r\n"
        '"dave@example.com";"Dave\r\nDupont";\r\n'
    ).encode("utf-8")

    response = console.post(IMPORT, upload(content, send=False))

    assert response.context["report"].created
    assert [row.line for row in response.context["report"].rows] == [2, 5]
    assert User.objects.get(email="carol@example.com").display_name == 'Martin; Carol "CJ"'
    assert User.objects.get(email="dave@example.com").display_name == "Dave\r\nDupont"


@pytest.mark.parametrize("bad_row, error", [
    ("not-an-email,X,en,,", "“not-an-email” is not a valid email"),
    (",No email,en,,", "the email is missing"),
    ("carol@example.com,Carol again,en,,", "this email is already on line 2"),
    ("ALICE@example.com,Alice,en,,", "a user with this email already exists"),
    ("erin@example.com,Erin,de,,", "unknown language “de” (use fr or en)"),
    ("erin@example.com,Erin,en,,many", "device limit “many” is not a whole number from 0 to 32767"),
    ("erin@example.com,Erin,en,,-1", "device limit “-1” is not a whole number from 0 to 32767"),
    ("erin@example.com,Erin,en,CORP\\taken,", "this MDM username is already taken"),
    ("erin@example.com,Erin,en,corp\\carol,", "this MDM username is already on line 2"),
    ("erin@example.com,Erin,en,,1,extra", "6 values but only 5 columns"),
])
def test_import_reports_each_bad_row_and_writes_nothing(console, alice, bad_row, error,
                                                        django_capture_on_commit_callbacks):
    UserFactory(email="taken@example.com", mdm_username="CORP\\taken")
    users_before = User.objects.count()
    content = ("email,display_name,language,mdm_username,device_limit\n"
               "carol@example.com,Carol,fr,CORP\\carol,2\n"
               f"{bad_row}\n"
               "dave@example.com,Dave,en,,\n")

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(IMPORT, upload(content))

    assert response.status_code == 200
    report = response.context["report"]
    assert not report.created
    assert [(row.line, row.errors) for row in report.rows] == [(2, []), (3, [error]), (4, [])]
    assert User.objects.count() == users_before
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.filter(action="user.added").exists()
    assert mail.outbox == []
    assert "Nothing was imported: correct the rows marked below and upload the file again." in messages_of(response)
    assert error in response.content.decode()


def test_import_reports_several_errors_of_one_row(console, db):
    content = "email,language,device_limit\nnope,xx,abc\n"
    response = console.post(IMPORT, upload(content))
    [(line, email, errors)] = results(response)
    assert line == 2
    assert len(errors) == 3


@pytest.mark.parametrize("content, message", [
    (b"", "The submitted file is empty."),
    (b"\r\n \r\n", "The file is empty."),
    ("carol@example.com,Carol\n".encode(), "The first line must be the header"),
    (b"email,langauge\ncarol@example.com,fr\n", "Unknown column “langauge”"),
    (b"email,email\ncarol@example.com,carol@example.com\n", "A column appears twice in the header."),
    (b"email,display_name\n", "The file has a header but no users."),
    ("email,display_name\ncarol@example.com,Cécile\n".encode("latin-1"), "The file is not UTF-8 text."),
])
def test_import_rejects_an_unreadable_file_with_a_form_error(console, db, content, message):
    response = console.post(IMPORT, upload(content))
    assert response.status_code == 200
    assert response.context["report"] is None
    assert any(message in error for error in response.context["form"].errors["file"])
    assert not User.objects.filter(email="carol@example.com").exists()
