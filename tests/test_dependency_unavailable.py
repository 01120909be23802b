"""A dependency down (PostgreSQL, Redis) answers with a clean 503 or the device's SOAP fault, and a
redelivered enrollment-URL re-issue resumes without sending anyone the email twice. The real outages
are in test_outage_*.py; these pin each answer without stopping a server."""
from unittest.mock import patch

import pytest
import redis
from django.db import IntegrityError, OperationalError
from django.urls import reverse
from lxml import etree

from enrollment import soap
from invitations import sending
from invitations.models import InvitationEmail, Organisation
from tests import omadm_messages as sml
from tests.enrollment_soap import discover_body
from tests.factories import InvitationFactory, UrlRotationFactory

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


def test_api_while_redis_is_down_is_a_json_503(full_api):
    with patch("invitations.api.InvitationViewSet.list", autospec=True,
               side_effect=redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")):
        response = full_api.get("/api/v1/invitations/")

    assert response.status_code == 503
    assert "temporarily unavailable" in response.json()["detail"]


def test_management_endpoint_while_the_database_is_down_is_a_plain_503(client, organisation):
    with patch("enrollment.omadm.identify", autospec=True, side_effect=DOWN):
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
