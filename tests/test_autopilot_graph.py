"""The Microsoft Graph connector against a local fake of Graph and its token endpoint: tokens, device
imports and their polling, profiles and their assignments, the status pull, throttling, token renewal,
refusals kept per device, and a connector that is off sending nothing."""
import logging

import pytest

from autopilot import graph, graph_sync, tasks
from autopilot.graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync, GraphTagGroup
from autopilot.models import AutopilotDevice, Profile
from tests.factories_autopilot import AutopilotDeviceFactory, GroupTagRuleFactory, ProfileFactory
from tests.factories_graph import GraphConnectorFactory, GraphDeviceSyncFactory, GraphTagGroupFactory
from tests.fake_graph import CLIENT_ID, CLIENT_SECRET, IDENTITIES, IDENTITIES_V1, IMPORTED, PROFILES, TENANT
from tests.fake_graph import connector, fake_graph, fresh_tokens  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(connector):
    return graph.Client(GraphConnector.get())


def status_of(device):
    return GraphDeviceSync.objects.get(device=device)


# --- tokens -----------------------------------------------------------------------------------------

def test_token_is_requested_by_client_credentials_and_reused(fake_graph, client):
    client.get(IDENTITIES)
    client.get(IDENTITIES)

    [token_request] = fake_graph.token_requests()
    assert token_request.path == f"/{TENANT}/oauth2/v2.0/token"
    assert token_request.body == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                  "client_secret": CLIENT_SECRET, "scope": f"{fake_graph.url}/.default"}
    graph_calls = fake_graph.sent("GET", IDENTITIES)
    assert len(graph_calls) == 2
    assert graph_calls[0].headers["Authorization"] == graph_calls[1].headers["Authorization"]


def test_token_close_to_expiry_is_renewed_before_use(fake_graph, client):
    fake_graph.token_lifetime = graph.TOKEN_MARGIN_SECONDS - 1

    client.get(IDENTITIES)
    client.get(IDENTITIES)

    assert fake_graph.tokens_issued == 2


def test_token_cache_is_shared_by_clients_of_the_same_credentials(fake_graph, connector):
    graph.Client(GraphConnector.get()).get(IDENTITIES)
    graph.Client(GraphConnector.get()).get(IDENTITIES)

    assert fake_graph.tokens_issued == 1


def test_wrong_secret_is_reported_with_the_token_endpoints_reason(fake_graph, connector):
    connector.set_client_secret("not-the-secret")
    connector.save()

    with pytest.raises(graph.AuthError, match="AADSTS7000215"):
        graph.Client(GraphConnector.get()).get(IDENTITIES)
    assert fake_graph.graph_requests() == []


def test_401_renews_the_token_once_and_the_request_goes_through(fake_graph, client):
    client.get(IDENTITIES)
    fake_graph.revoke_tokens()

    assert client.get(IDENTITIES) == {"value": []}

    assert fake_graph.tokens_issued == 2
    assert [r.path for r in fake_graph.sent("GET", IDENTITIES)] == [IDENTITIES] * 3


def test_a_second_401_is_an_error_not_a_loop(fake_graph, client):
    fake_graph.fail("GET", IDENTITIES, 401, body={"error": {"code": "Unauthorized", "message": "No permission"}},
                    times=5)

    with pytest.raises(graph.AuthError, match="No permission"):
        client.get(IDENTITIES)

    assert fake_graph.tokens_issued == 2
    assert len(fake_graph.sent("GET", IDENTITIES)) == 2


def test_next_link_to_another_host_is_not_followed(fake_graph, client):
    with pytest.raises(graph.GraphError, match="another host"):
        client.get("https://elsewhere.example.com/beta/deviceManagement/windowsAutopilotDeviceIdentities")
    assert fake_graph.requests == []


# --- devices ----------------------------------------------------------------------------------------

def test_devices_are_imported_in_batches_with_graphs_documented_fields(fake_graph, client, monkeypatch):
    monkeypatch.setattr(graph_sync, "BATCH_SIZE", 2)
    first = AutopilotDeviceFactory(serial_number="PF1ABCDE", product_id="00330-80000-00000-AA123",
                                   group_tag="Sales-01", assigned_user="alice@example.com")
    AutopilotDeviceFactory.create_batch(2)

    assert graph_sync.push_devices(client) == 3

    batches = fake_graph.sent("POST", IMPORTED + "/import")
    assert [len(b.body["importedWindowsAutopilotDeviceIdentities"]) for b in batches] == [2, 1]
    sent = batches[0].body["importedWindowsAutopilotDeviceIdentities"][0]
    assert set(sent) == {"@odata.type", "importId", "serialNumber", "productKey", "hardwareIdentifier", "groupTag",
                         "assignedUserPrincipalName", "state"}
    assert sent["@odata.type"] == "#microsoft.graph.importedWindowsAutopilotDeviceIdentity"
    assert sent["serialNumber"] == "PF1ABCDE"
    assert sent["productKey"] == "00330-80000-00000-AA123"
    assert sent["hardwareIdentifier"] == first.hardware_hash
    assert sent["groupTag"] == "Sales-01"
    assert sent["assignedUserPrincipalName"] == "alice@example.com"
    assert sent["state"] == {"@odata.type": "microsoft.graph.importedWindowsAutopilotDeviceIdentityState",
                             "deviceImportStatus": "pending", "deviceRegistrationId": "", "deviceErrorCode": 0,
                             "deviceErrorName": ""}
    assert batches[0].headers["Content-Type"] == "application/json"
    row = status_of(first)
    assert row.status == GraphDeviceSync.Status.PENDING
    assert row.imported_id in fake_graph.imports


def test_devices_already_pushed_are_not_sent_again(fake_graph, client):
    GraphDeviceSyncFactory(registered=True)
    GraphDeviceSyncFactory(refused=True)

    assert graph_sync.push_devices(client) == 0
    assert fake_graph.sent("POST") == []


def test_refused_devices_are_sent_again_when_asked(fake_graph, client):
    refused = GraphDeviceSyncFactory(refused=True)

    assert graph_sync.push_devices(client, retry_refused=True) == 1

    refused.refresh_from_db()
    assert refused.status == GraphDeviceSync.Status.PENDING
    assert refused.error_name == ""


def test_import_is_polled_until_complete_then_its_record_removed(fake_graph, client):
    fake_graph.polls_until_done = 2
    device = AutopilotDeviceFactory()
    graph_sync.push_devices(client)
    imported_id = status_of(device).imported_id

    assert graph_sync.poll_imports(client) == 1
    assert status_of(device).status == GraphDeviceSync.Status.PENDING
    assert graph_sync.poll_imports(client) == 0

    row = status_of(device)
    assert row.status == GraphDeviceSync.Status.REGISTERED
    assert row.identity_id == fake_graph.identities[0]["id"]
    assert [r.path for r in fake_graph.sent("GET", IMPORTED)] == [f"{IMPORTED}/{imported_id}"] * 2
    assert [r.path for r in fake_graph.sent("DELETE", IMPORTED)] == [f"{IMPORTED}/{imported_id}"]
    assert fake_graph.imports == {}


def test_import_error_is_kept_on_the_device_with_graphs_code_and_name(fake_graph, client):
    device = AutopilotDeviceFactory(serial_number="DUP-1")
    fake_graph.import_errors["DUP-1"] = (806, "ZtdDeviceAlreadyAssigned")
    graph_sync.push_devices(client)

    graph_sync.poll_imports(client)

    row = status_of(device)
    assert row.status == GraphDeviceSync.Status.REFUSED
    assert (row.error_code, row.error_name) == (806, "ZtdDeviceAlreadyAssigned")
    assert "already registered for Autopilot in this tenant" in row.error_message


def test_a_refused_batch_is_sent_again_device_by_device_and_each_keeps_its_verdict(fake_graph, client):
    good = AutopilotDeviceFactory(serial_number="GOOD-1")
    bad = AutopilotDeviceFactory(serial_number="BAD-1")
    fake_graph.rejected_serials["BAD-1"] = "The hardware hash of device BAD-1 is not valid."

    graph_sync.push_devices(client)

    batches = fake_graph.sent("POST", IMPORTED)
    assert [len(r.body["importedWindowsAutopilotDeviceIdentities"]) for r in batches] == [2, 1, 1]
    assert status_of(good).status == GraphDeviceSync.Status.PENDING
    refused = status_of(bad)
    assert refused.status == GraphDeviceSync.Status.REFUSED
    assert (refused.error_code, refused.error_name) == (400, "BadRequest")
    assert refused.error_message == "The hardware hash of device BAD-1 is not valid."


def test_device_without_hardware_hash_is_refused_here_without_a_request(fake_graph, client):
    device = AutopilotDeviceFactory(hardware_hash="", hardware_hash_digest="")

    assert graph_sync.push_devices(client) == 0

    assert fake_graph.requests == []
    assert status_of(device).error_name == "NoHardwareHash"


def test_import_record_gone_from_microsoft_is_reported(fake_graph, client):
    row = GraphDeviceSyncFactory(imported_id="5e1c0d4e-0000-4000-8000-000000000000")

    graph_sync.poll_imports(client)

    row.refresh_from_db()
    assert row.status == GraphDeviceSync.Status.REFUSED
    assert row.error_name == "ImportRecordMissing"


# --- status -----------------------------------------------------------------------------------------

def test_status_pull_follows_pages_and_fills_the_device_page_fields(fake_graph, client, monkeypatch):
    fake_graph.page_size = 2
    devices = AutopilotDeviceFactory.create_batch(3)
    for device in devices[:2]:
        fake_graph.add_identity(device.serial_number.lower())
    enrolled = fake_graph.add_identity(devices[2].serial_number, deploymentProfileAssignmentStatus="assignedInSync",
                                       enrollmentState="enrolled",
                                       lastContactedDateTime="2026-03-04T05:06:07.1234567Z")
    fake_graph.add_identity("NOT-OURS")

    assert graph_sync.pull_status(client) == 3

    assert len(fake_graph.sent("GET", IDENTITIES)) == 2
    row = status_of(devices[2])
    assert row.status == GraphDeviceSync.Status.REGISTERED
    assert row.identity_id == enrolled["id"]
    assert (row.profile_assignment_status, row.enrollment_state) == ("assignedInSync", "enrolled")
    assert row.last_contacted_at.isoformat() == "2026-03-04T05:06:07.123456+00:00"
    assert status_of(devices[0]).last_contacted_at is None
    assert AutopilotDevice.objects.get(pk=devices[2].pk).ztd_id == enrolled["id"]


def test_group_tag_and_user_changed_here_are_sent_to_microsoft_at_the_next_pull(fake_graph, client):
    changed = AutopilotDeviceFactory(group_tag="Sales-02", assigned_user="bob@example.com")
    same = AutopilotDeviceFactory(group_tag="Sales-01")
    untagged = AutopilotDeviceFactory(group_tag="")
    identity = fake_graph.add_identity(changed.serial_number, groupTag="Sales-01", userPrincipalName="")
    fake_graph.add_identity(same.serial_number, groupTag="Sales-01")
    fake_graph.add_identity(untagged.serial_number, groupTag="Kept-There")

    graph_sync.pull_status(client)

    [update] = fake_graph.sent("POST", IDENTITIES_V1)
    assert update.path == f"{IDENTITIES_V1}/{identity['id']}/updateDeviceProperties"
    assert update.body == {"groupTag": "Sales-02", "userPrincipalName": "bob@example.com"}
    assert identity["groupTag"] == "Sales-02"


def test_status_pull_registers_a_device_microsoft_refused_as_already_registered(fake_graph, client):
    row = GraphDeviceSyncFactory(refused=True)
    fake_graph.add_identity(row.device.serial_number)

    graph_sync.pull_status(client)

    row.refresh_from_db()
    assert row.status == GraphDeviceSync.Status.REGISTERED
    assert row.error_name == ""


# --- profiles ---------------------------------------------------------------------------------------

def test_user_driven_profile_is_pushed_with_graphs_fields(fake_graph, client):
    ProfileFactory(name="Sales laptops", description="For sales", language="fr-FR", configure_keyboard=True,
                   device_name_template="SAL-%RAND:5%", user_account_type="standard", hide_eula=True,
                   hide_privacy_settings=False, hide_change_account_options=True, allow_pre_provisioning=True,
                   convert_all_targeted_devices=True)

    assert graph_sync.push_profiles(client) == 1

    [created] = fake_graph.sent("POST", PROFILES)
    assert created.path == PROFILES
    assert created.body == {
        "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
        "displayName": "Sales laptops",
        "description": "For sales",
        "locale": "fr-FR",
        "deviceNameTemplate": "SAL-%RAND:5%",
        "deviceType": "windowsPc",
        "preprovisioningAllowed": True,
        "hardwareHashExtractionEnabled": True,
        "outOfBoxExperienceSetting": {
            "privacySettingsHidden": False,
            "eulaHidden": True,
            "userType": "standard",
            "deviceUsageType": "singleUser",
            "keyboardSelectionPageSkipped": True,
            "escapeLinkHidden": True,
        },
    }


def test_hybrid_self_deploying_and_hololens_profiles_map_to_graphs_types(fake_graph, client):
    hybrid = ProfileFactory(hybrid=True, user_account_type="administrator")
    kiosk = ProfileFactory(self_deploying=True)
    hololens = ProfileFactory(hololens=True)

    graph_sync.push_profiles(client)

    bodies = {r.body["displayName"]: r.body for r in fake_graph.sent("POST", PROFILES)}
    assert bodies[hybrid.name]["@odata.type"] == "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile"
    assert bodies[hybrid.name]["hybridAzureADJoinSkipConnectivityCheck"] is False
    assert bodies[hybrid.name]["outOfBoxExperienceSetting"]["userType"] == "administrator"
    assert bodies[hybrid.name]["locale"] == "os-default"
    assert bodies[kiosk.name]["outOfBoxExperienceSetting"]["deviceUsageType"] == "shared"
    assert bodies[hololens.name]["deviceType"] == "holoLens"
    assert bodies[hololens.name]["outOfBoxExperienceSetting"]["deviceUsageType"] == "shared"


def test_changed_profile_is_updated_in_place_and_unchanged_one_not_sent(fake_graph, client):
    profile = ProfileFactory(name="Kiosks")
    graph_sync.push_profiles(client)
    graph_id = GraphProfileSync.objects.get(profile=profile).graph_id

    assert graph_sync.push_profiles(client) == 0
    Profile.objects.filter(pk=profile.pk).update(hide_eula=False)
    assert graph_sync.push_profiles(client) == 1

    assert len(fake_graph.sent("POST", PROFILES)) == 1
    [update] = fake_graph.sent("PATCH", PROFILES)
    assert update.path == f"{PROFILES}/{graph_id}"
    assert update.body["outOfBoxExperienceSetting"]["eulaHidden"] is False
    assert fake_graph.profiles[graph_id]["outOfBoxExperienceSetting"]["eulaHidden"] is False


def test_group_tags_become_dynamic_groups_assigned_to_the_profile(fake_graph, client):
    profile = ProfileFactory(default=True)
    GroupTagRuleFactory(profile=profile, tag="Sales-01")

    graph_sync.push_profiles(client)

    [group_request] = fake_graph.sent("POST", "/v1.0/groups")
    assert group_request.body["membershipRule"] == '(device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales-01"))'
    assert group_request.body["groupTypes"] == ["DynamicMembership"]
    assert group_request.body["membershipRuleProcessingState"] == "On"
    assert (group_request.body["securityEnabled"], group_request.body["mailEnabled"]) == (True, False)
    group_id = GraphTagGroup.objects.get(tag="Sales-01").group_id
    graph_id = GraphProfileSync.objects.get(profile=profile).graph_id
    targets = sorted((a["target"] for a in fake_graph.assignments[graph_id]), key=lambda t: t["@odata.type"])
    assert targets == [{"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"},
                       {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}]
    assert all(a["@odata.type"] == "#microsoft.graph.windowsAutopilotDeploymentProfileAssignment"
               for a in fake_graph.assignments[graph_id])


def test_removed_group_tag_loses_its_assignment_and_the_group_is_reused(fake_graph, client):
    profile = ProfileFactory()
    rule = GroupTagRuleFactory(profile=profile, tag="Sales-01")
    GraphTagGroupFactory(tag="Sales-01", group_id="11111111-2222-4333-8444-555555555555")
    graph_sync.push_profiles(client)
    graph_id = GraphProfileSync.objects.get(profile=profile).graph_id
    assert len(fake_graph.assignments[graph_id]) == 1

    rule.delete()
    graph_sync.push_profiles(client)

    assert fake_graph.assignments[graph_id] == []
    assert fake_graph.sent("POST", "/v1.0/groups") == []


def test_profile_graph_refuses_keeps_graphs_message_and_others_go_on(fake_graph, client):
    ProfileFactory(name="A first")
    second = ProfileFactory(name="B second")
    fake_graph.fail("POST", PROFILES, 400, body={"error": {"code": "BadRequest",
                                                           "message": "Invalid deviceNameTemplate"}})

    assert graph_sync.push_profiles(client) == 1

    assert GraphProfileSync.objects.get(profile__name="A first").error_message == \
        "Microsoft refused the profile: Invalid deviceNameTemplate"
    assert GraphProfileSync.objects.get(profile=second).graph_id


# --- tasks: retries, disabled connector ----------------------------------------------------------

def test_synchronisation_task_imports_polls_and_pulls(fake_graph, connector):
    device = AutopilotDeviceFactory()
    fake_graph.polls_until_done = 2

    tasks.sync_with_graph.delay()

    row = status_of(device)
    assert row.status == GraphDeviceSync.Status.REGISTERED
    assert row.pulled_at is not None
    connector.refresh_from_db()
    assert connector.last_sync_at is not None and connector.last_error == ""


def test_throttled_synchronisation_waits_for_graphs_retry_after(fake_graph, connector, caplog):
    device = AutopilotDeviceFactory()
    fake_graph.fail("POST", IMPORTED + "/import", 429, headers={"Retry-After": "7"},
                    body={"error": {"code": "TooManyRequests", "message": "Too many requests"}})

    with caplog.at_level(logging.WARNING, logger="autopilot.tasks"):
        tasks.sync_with_graph.delay()

    assert "retrying in 7 s" in caplog.text
    assert len(fake_graph.sent("POST", IMPORTED + "/import")) == 2
    assert status_of(device).status == GraphDeviceSync.Status.REGISTERED


def test_transient_failure_is_retried_with_backoff(fake_graph, connector, caplog):
    AutopilotDeviceFactory()
    fake_graph.fail("GET", IDENTITIES, 503, times=2)

    with caplog.at_level(logging.WARNING, logger="autopilot.tasks"):
        tasks.sync_with_graph.delay()

    assert "retrying in 15 s" in caplog.text and "retrying in 30 s" in caplog.text
    connector.refresh_from_db()
    assert connector.last_error == ""


def test_retry_delay_prefers_retry_after_and_caps_backoff():
    assert graph.retry_delay(graph.Retry("x", retry_after=42), retries=5) == 42
    assert graph.retry_delay(graph.Retry("x"), retries=0) == 15
    assert graph.retry_delay(graph.Retry("x"), retries=20) == 900


def test_permanent_failure_stops_the_run_and_shows_on_the_connector(fake_graph, connector):
    AutopilotDeviceFactory()
    fake_graph.fail("POST", PROFILES, 403, body={"error": {"code": "Forbidden", "message": "Missing permission"}})
    ProfileFactory()

    tasks.sync_with_graph.delay()

    connector.refresh_from_db()
    assert connector.last_error == "Missing permission"
    assert fake_graph.sent("POST", IMPORTED) == []


def test_disabled_connector_sends_nothing(fake_graph):
    GraphConnectorFactory(disabled=True, graph_base_url=fake_graph.url, token_base_url=fake_graph.url)
    AutopilotDeviceFactory()
    ProfileFactory()

    tasks.sync_with_graph.delay()
    tasks.poll_graph_imports.delay(1)

    assert fake_graph.requests == []
    assert not GraphDeviceSync.objects.exists()


def test_unconfigured_connector_sends_nothing(fake_graph, db):
    AutopilotDeviceFactory()

    tasks.sync_with_graph.delay()

    assert fake_graph.requests == []
    assert GraphConnector.get().enabled is False


# --- the secret -------------------------------------------------------------------------------------

def test_client_secret_is_stored_encrypted(connector):
    stored = GraphConnector.objects.values_list("sealed_client_secret", flat=True).get()
    assert CLIENT_SECRET not in stored
    assert GraphConnector.get().client_secret() == CLIENT_SECRET


def test_client_secret_never_reaches_the_logs(fake_graph, connector, caplog):
    AutopilotDeviceFactory()
    with caplog.at_level(logging.DEBUG):
        tasks.sync_with_graph.delay()
        fake_graph.fail("POST", f"/{TENANT}/oauth2", 400,
                        body={"error": "invalid_request", "error_description": f"bad value {CLIENT_SECRET}"})
        graph._tokens.clear()
        tasks.sync_with_graph.delay()

    assert caplog.records
    assert CLIENT_SECRET not in caplog.text
    connector.refresh_from_db()
    assert "[client secret]" in connector.last_error and CLIENT_SECRET not in connector.last_error


def test_secret_sealed_under_another_passphrase_stops_the_run_with_a_clear_reason(fake_graph, connector, settings):
    settings.CA_KEY_PASSPHRASE = "a-different-passphrase-than-when-it-was-saved"

    tasks.sync_with_graph.delay()

    assert fake_graph.requests == []
    connector.refresh_from_db()
    assert "enter the secret again" in connector.last_error
