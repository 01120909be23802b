"""A dependency down (PostgreSQL, Redis) answers with a clean 503 or the device's SOAP fault, and a
redelivered enrollment-URL re-issue resumes without sending anyone the email twice. The real outages
are in test_outage_*.py; these pin each answer without stopping a server."""
from unittest.mock import patch

import pytest
import redis
from django.db import IntegrityError, OperationalError, connection
from django.urls import reverse
from lxml import etree

from accounts.models import Organisation
from enrollment import soap
from invitations import sending
from invitations.models import InvitationEmail
from tests import omadm_messages as sml
from tests.enrollment_soap import discover_body
from tests.factories import InvitationFactory, UrlRotationFactory, UserFactory

DOWN = OperationalError("connection to server at \"127.0.0.1\", port 5432 failed: Connection refused")


@pytest.fixture
def database_down():
    with patch.object(Organisation, "get", autospec=True, side_effect=DOWN) as get:
        yield get


def fault_subcode(response):
    root = etree.fromstring(response.content)
    return root.findtext(".//{%s}Subcode/{%s}Value" % (soap.SOAP_NS, soap.SOAP_NS))


def test_discovery_while_the_database_is_down_gets_the_enrollment_server_fault(client, database_down):
    response = client.post("/EnrollmentServer/Discovery.svc", discover_body(), content_type=soap.CONTENT_TYPE)

    assert response.status_code == 200
    assert response["Content-Type"] == soap.CONTENT_TYPE
    assert fault_subcode(response) == "s:EnrollmentServer"
    assert soap.UNAVAILABLE.encode() in response.content
    assert response["Retry-After"] == "30"


def test_handler_losing_the_database_gets_the_enrollment_server_fault_not_an_internal_one(client, organisation):
    with patch("enrollment.discovery.enrollment_version", autospec=True, side_effect=DOWN):
        response = client.post("/EnrollmentServer/Discovery.svc", discover_body(), content_type=soap.CONTENT_TYPE)

    assert fault_subcode(response) == "s:EnrollmentServer"


def test_console_page_while_the_database_is_down_is_a_503_page(console):
    with patch("django.contrib.sessions.backends.db.SessionStore.load", autospec=True, side_effect=DOWN):
        response = console.get(reverse("admin:index"))

    assert response.status_code == 503
    assert b"Temporarily unavailable" in response.content
    assert response["Retry-After"] == "30"


class DatabaseGoesDown:
    """Every query fails from the first one whose SQL names `table` (from the first query at all when
    None), as when PostgreSQL stops in the middle of a request; `attempts` counts the refused ones."""

    def __init__(self, table=None):
        self.table, self.down, self.attempts = table, table is None, 0

    def __call__(self, execute, sql, params, many, context):
        self.down = self.down or self.table in sql
        if not self.down:
            return execute(sql, params, many, context)
        self.attempts += 1
        raise OperationalError("server closed the connection unexpectedly")


def unavailable_page(response):
    assert response.status_code == 503 and response["Retry-After"] == "30"
    html = response.content.decode()
    return response["Content-Language"], html[html.index("<html"):html.index(">", html.index("<html")) + 1], html


@pytest.mark.parametrize("accept_language, language, title", [
    ("fr-FR,fr;q=0.9,en;q=0.8", "fr", "Service momentanément indisponible"),
    ("en-GB,en;q=0.9", "en", "Temporarily unavailable"),
    ("de-DE", "en", "Temporarily unavailable"),  # neither: the portal's default
])
def test_unavailable_page_speaks_the_browsers_language_without_the_database(client, db, accept_language, language,
                                                                          title):
    outage = DatabaseGoesDown()
    with connection.execute_wrapper(outage):
        response = client.get(reverse("invitations:login"), HTTP_ACCEPT_LANGUAGE=accept_language)

    content_language, html_tag, html = unavailable_page(response)
    assert content_language == language and html_tag == f'<html lang="{language}">'
    assert f"<h1>{title}</h1>" in html
    assert outage.attempts == 1  # the page itself asked the database nothing
    assert "Accept-Language" in response["Vary"]


def test_unavailable_page_in_french_says_nothing_was_lost(client, db):
    with connection.execute_wrapper(DatabaseGoesDown()):
        response = client.get(reverse("invitations:login"), HTTP_ACCEPT_LANGUAGE="fr")
    assert "Rien de ce que vous avez fait n’a été perdu. Réessayez dans une minute." in response.content.decode()


def test_unavailable_page_speaks_the_signed_in_users_language_over_the_browsers(client, organisation):
    client.force_login(UserFactory(email="amelie@example.com", language="fr"))
    outage = DatabaseGoesDown(table="accounts_organisation")  # after the user was read
    with connection.execute_wrapper(outage):
        response = client.get(reverse("invitations:enroll"), HTTP_ACCEPT_LANGUAGE="en")

    content_language, html_tag, html = unavailable_page(response)
    assert (content_language, html_tag) == ("fr", '<html lang="fr">')
    assert "<h1>Service momentanément indisponible</h1>" in html and outage.attempts == 1


def test_unavailable_page_falls_back_to_the_browsers_language_when_the_user_could_not_be_read(client, organisation):
    client.force_login(UserFactory(email="amelie@example.com", language="fr"))
    with connection.execute_wrapper(DatabaseGoesDown()):  # the session itself cannot be read
        response = client.get(reverse("invitations:enroll"), HTTP_ACCEPT_LANGUAGE="en")
    assert unavailable_page(response)[0] == "en"


def test_api_while_redis_is_down_is_a_json_503(full_api):
    with patch("invitations.api.InvitationViewSet.list", autospec=True,
               side_effect=redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")):
        response = full_api.get("/api/v1/invitations/")

    assert response.status_code == 503
    assert "temporarily unavailable" in response.json()["detail"]


def test_management_endpoint_while_the_database_is_down_is_a_plain_503(client, organisation):
    with patch("management.omadm.identify", autospec=True, side_effect=DOWN):
        response = client.post(sml.URL, sml.package1("1E08C6E95D8BB843B1278FF45BC60CC6"), content_type=sml.CONTENT_TYPE)

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")


def test_a_real_bug_is_not_disguised_as_an_outage(console):
    with patch("invitations.api.InvitationViewSet.list", autospec=True, side_effect=IntegrityError("duplicate key")):
        with pytest.raises(IntegrityError):
            console.get("/api/v1/invitations/")


def test_redelivered_reissue_skips_invitations_it_already_reissued(db, organisation, mailoutbox,
                                                                   django_capture_on_commit_callbacks):
    invitations = [InvitationFactory() for _ in range(5)]
    rotation = UrlRotationFactory()
    # The first run committed its first batch, then its worker died.
    for invitation in invitations[:2]:
        InvitationEmail.objects.create(invitation=invitation, reason=InvitationEmail.Reason.REISSUE)

    with django_capture_on_commit_callbacks(execute=True):
        sending.reissue_for_rotation(rotation)

    rotation.refresh_from_db()
    assert (rotation.total, rotation.done) == (5, 5) and rotation.finished_at
    for invitation in invitations:
        assert invitation.emails.filter(reason=InvitationEmail.Reason.REISSUE).count() == 1
    assert sorted(m.to[0] for m in mailoutbox) == sorted(i.user.email for i in invitations[2:])
