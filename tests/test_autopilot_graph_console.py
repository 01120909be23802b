"""The Graph connector's console page (settings, test, synchronise) and its status on the Autopilot
device page. The client secret is write-only: never in a page, a message, the audit log or the logs."""
import logging

import pytest
from django.contrib.messages import get_messages

from accounts.models import AuditEvent
from autopilot import graph
from autopilot.graph_models import GraphConnector, GraphDeviceSync
from enrollment.models import EntraSettings
from tests.factories_autopilot import AutopilotDeviceFactory
from tests.factories_graph import GraphConnectorFactory, GraphDeviceSyncFactory
from tests.fake_graph import CLIENT_ID, CLIENT_SECRET, IMPORTED, TENANT
from tests.fake_graph import connector, fake_graph, fresh_tokens  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.django_db

PAGE = "/admin/autopilot/graphconnector/1/change/"
TEST = "/admin/autopilot/graphconnector/test/"
SYNC = "/admin/autopilot/graphconnector/sync/"
NEW_SECRET = "n3w~Secret.Value_that-must-stay-hidden"


def settings_form(**fields):
    return {"client_id": CLIENT_ID, "client_secret": "",
            "graph_base_url": "https://graph.microsoft.com", "token_base_url": "https://login.microsoftonline.com",
            "_save": "Save", **fields}


def enter_tenant(**fields):
    """The tenant is entered once, in the Entra ID settings."""
    EntraSettings.objects.update_or_create(pk=1, defaults={"tenant_ids": [TENANT], **fields})


def signed_in(client, user):
    client.force_login(user)
    return client


def messages_after(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the trio -----------------------------------------------------------------------------------------

def test_connector_page_redirects_anonymous(client):
    assert client.get(PAGE)["Location"].startswith("/admin/login/")
    assert client.post(SYNC)["Location"].startswith("/admin/login/")


def test_helpdesk_reads_the_connector_page_but_cannot_change_or_start_anything(client, helpdesk, connector):
    page = signed_in(client, helpdesk).get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="client_secret"' not in html and "graph-sync-now" not in html and "graph-test" not in html
    assert client.post(PAGE, settings_form(enabled="on")).status_code == 403
    assert client.post(SYNC).status_code == 403
    assert client.post(TEST).status_code == 403


def test_enrollment_admin_synchronises_but_cannot_change_the_credentials(client, enrollment_admin, connector):
    page = signed_in(client, enrollment_admin).get(PAGE)
    assert 'name="client_secret"' not in page.content.decode()
    assert "graph-sync-now" in page.content.decode()
    assert client.post(PAGE, settings_form(client_secret=NEW_SECRET)).status_code == 403
    assert client.post(TEST).status_code == 403
    assert GraphConnector.get().client_secret() == CLIENT_SECRET


def test_connector_list_leads_to_the_one_connector(console, db):
    response = console.get("/admin/autopilot/graphconnector/")
    assert (response.status_code, response["Location"]) == (302, PAGE)


# --- settings -----------------------------------------------------------------------------------------

def test_connector_is_off_by_default(console, db):
    html = console.get("/admin/autopilot/graphconnector/", follow=True).content.decode()
    assert GraphConnector.get().enabled is False
    assert "none saved" in html
    assert 'value="https://graph.microsoft.com"' in html
    assert 'value="https://login.microsoftonline.com"' in html


def test_full_admin_saves_the_settings_and_the_secret_is_never_shown_again(client, full_admin, caplog):
    enter_tenant()
    signed_in(client, full_admin)
    with caplog.at_level(logging.DEBUG):
        response = client.post(PAGE, settings_form(enabled="on", client_secret=NEW_SECRET), REMOTE_ADDR="203.0.113.9")
        assert response.status_code == 302
        page = client.get(PAGE)

    connector = GraphConnector.get()
    assert connector.enabled and connector.tenant == TENANT and connector.client_id == CLIENT_ID
    assert connector.client_secret() == NEW_SECRET
    assert NEW_SECRET not in connector.sealed_client_secret
    html = page.content.decode()
    assert NEW_SECRET not in html and "(not shown)" in html
    changed = AuditEvent.objects.get(action="graphconnector.changed")
    assert changed.ip == "203.0.113.9" and "Client secret" in str(changed.detail)
    assert NEW_SECRET not in str(changed.detail)
    assert NEW_SECRET not in caplog.text


def test_saving_without_a_secret_keeps_the_saved_one(console, connector):
    response = console.post(PAGE, settings_form(enabled="on", graph_base_url=connector.graph_base_url,
                                                token_base_url=connector.token_base_url))
    assert response.status_code == 302
    assert GraphConnector.get().client_secret() == CLIENT_SECRET


def test_a_refused_form_does_not_send_the_typed_secret_back(console, db):
    response = console.post(PAGE, settings_form(client_id="not-a-guid", client_secret=NEW_SECRET))
    assert response.status_code == 200
    assert NEW_SECRET not in response.content.decode()
    assert GraphConnector.get().has_client_secret is False


@pytest.mark.parametrize("fields, field, message", [
    ({"enabled": "on"}, "enabled", "Give the client secret before turning the connector on."),
    ({"client_id": "1234"}, "client_id", "The application (client) id is a GUID"),
    ({"graph_base_url": "http://graph.example.com"}, "graph_base_url", "Use an https:// address"),
    ({"token_base_url": "https://user:pw@login.example.com"}, "token_base_url", "without query, fragment or user"),
])
def test_settings_mistakes_are_clear_form_errors(console, db, fields, field, message):
    response = console.post(PAGE, settings_form(**fields))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert GraphConnector.get().enabled is False


def test_the_tenant_is_the_one_of_the_entra_id_settings(console, db):
    """Shown on the page with the way to where it is entered; without it the connector stays off."""
    response = console.post(PAGE, settings_form(client_secret=NEW_SECRET, enabled="on"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["enabled"] == [
        "Enter your tenant id in the Entra ID settings (Enrollment > Entra ID) first."]
    assert 'Not set yet: <a href="/admin/enrollment/entrasettings/">' in response.content.decode()

    enter_tenant(tenant_ids=[], tenant_domain="contoso.onmicrosoft.com")  # a domain names the tenant too
    assert console.post(PAGE, settings_form(client_secret=NEW_SECRET, enabled="on")).status_code == 302
    connector = GraphConnector.get()
    assert connector.enabled and connector.token_url.endswith("/contoso.onmicrosoft.com/oauth2/v2.0/token")
    enter_tenant()
    html = console.get(PAGE).content.decode()
    assert f'{TENANT} (<a href="/admin/enrollment/entrasettings/">change in the Entra ID settings</a>)' in html


# --- test the connection, synchronise -------------------------------------------------------------

def test_testing_the_connection_reports_success(console, connector, fake_graph):
    response = console.post(TEST)
    assert response.status_code == 302
    assert messages_after(response) == [
        "Connected: Microsoft Graph gave a token and the Autopilot devices can be read."]
    assert fake_graph.tokens_issued == 1


def test_testing_the_connection_reports_the_reason_without_the_secret(console, connector, fake_graph):
    fake_graph.fail("POST", f"/{TENANT}/oauth2", 401, body={"error": "invalid_client",
                                                           "error_description": f"AADSTS7000215 {CLIENT_SECRET}"})
    response = console.post(TEST)
    [message] = messages_after(response)
    assert "The connection failed" in message and "AADSTS7000215" in message
    assert CLIENT_SECRET not in message
    assert CLIENT_SECRET not in console.get(PAGE).content.decode()


def test_synchronise_now_pushes_devices_and_is_audited(client, enrollment_admin, connector, fake_graph,
                                                       django_capture_on_commit_callbacks):
    device = AutopilotDeviceFactory()
    signed_in(client, enrollment_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SYNC)
    assert response.status_code == 302
    assert len(fake_graph.sent("POST", IMPORTED + "/import")) == 1
    assert GraphDeviceSync.objects.get(device=device).status == GraphDeviceSync.Status.REGISTERED
    assert AuditEvent.objects.filter(action="graphconnector.sync", actor=enrollment_admin).exists()


def test_synchronise_can_retry_refused_devices(console, connector, fake_graph, django_capture_on_commit_callbacks):
    refused = GraphDeviceSyncFactory(refused=True)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(SYNC, {"retry_refused": "1"})
    refused.refresh_from_db()
    assert refused.status == GraphDeviceSync.Status.REGISTERED


def test_synchronise_with_the_connector_off_sends_nothing(console, fake_graph, django_capture_on_commit_callbacks):
    GraphConnectorFactory(disabled=True, graph_base_url=fake_graph.url, token_base_url=fake_graph.url)
    AutopilotDeviceFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(SYNC)
    assert messages_after(response) == ["The connector is off: nothing was sent."]
    assert fake_graph.requests == []


def test_connector_page_lists_refused_devices_with_graphs_message(console, connector):
    GraphDeviceSyncFactory(refused=True, device__serial_number="REFUSED-1", error_message="Already there.")
    html = console.get(PAGE).content.decode()
    assert "REFUSED-1" in html and "ZtdDeviceAlreadyAssigned (806)" in html and "Already there." in html


# --- the device page ----------------------------------------------------------------------------------

def test_device_page_shows_the_status_pulled_from_microsoft(client, helpdesk, db):
    row = GraphDeviceSyncFactory(registered=True, profile_assignment_status="assignedInSync",
                                 enrollment_state="enrolled")
    html = signed_in(client, helpdesk).get(f"/admin/autopilot/autopilotdevice/{row.device.pk}/change/").content.decode()
    assert "Microsoft Autopilot service (Graph connector)" in html
    assert "Registered with Microsoft" in html and "assignedInSync" in html and "enrolled" in html
    assert row.identity_id in html


def test_device_page_shows_why_microsoft_refused_the_device(console, db):
    row = GraphDeviceSyncFactory(refused=True, error_message="The device is registered to another organisation.")
    html = console.get(f"/admin/autopilot/autopilotdevice/{row.device.pk}/change/").content.decode()
    assert "Refused by Microsoft" in html and "ZtdDeviceAlreadyAssigned" in html
    assert "The device is registered to another organisation." in html
