"""Synchronising with Microsoft's Autopilot service through Graph, so that devices
imported here also get their profile from Microsoft when they start online.

- Devices: imported records are pushed in batches to the v1.0 `import` action of
  importedWindowsAutopilotDeviceIdentities; each import record is then polled until Microsoft's Device
  Directory Service says `complete` or `error` (deviceErrorCode / deviceErrorName, kept per device), and
  removed, as Intune's own import does. A batch Graph refuses with 400 is sent again device by device,
  so each device gets its own verdict.
- Profiles: pushed to windowsAutopilotDeploymentProfiles (beta: there is no v1.0 yet), created or
  updated, then assigned: a group tag becomes a dynamic Microsoft Entra device group
  (`[OrderID]:<tag>`, as Intune targets group tags) and the default profile goes to all devices.
  Explicit per-device choices stay local: Graph assigns profiles to groups only.
- Status: windowsAutopilotDeviceIdentities (beta, for the profile assignment status) are pulled and
  matched by serial number; the identity's id is the device's ZTD id, which enrollment matching uses.
  A group tag or assigned user changed here since is sent with the v1.0 updateDeviceProperties action.

Errors: `graph.Retry` (throttling, transient) propagates for the task to retry later; a refusal that
concerns one device or profile is recorded on it; anything else (credentials, missing permission)
stops the run and is shown on the connector's page.
"""
import hashlib
import json
import logging
import re
import uuid
from urllib.parse import quote

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from . import graph
from .graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync, GraphTagGroup
from .models import AutopilotDevice, Profile

logger = logging.getLogger(__name__)

IMPORT_PATH = "/v1.0/deviceManagement/importedWindowsAutopilotDeviceIdentities/import"
IMPORTED_PATH = "/v1.0/deviceManagement/importedWindowsAutopilotDeviceIdentities/{id}"
IDENTITIES_PATH = "/beta/deviceManagement/windowsAutopilotDeviceIdentities"
UPDATE_PROPERTIES_PATH = "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}/updateDeviceProperties"
PROFILES_PATH = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles"
PROFILE_PATH = PROFILES_PATH + "/{id}"
ASSIGNMENTS_PATH = PROFILE_PATH + "/assignments"
ASSIGNMENT_PATH = ASSIGNMENTS_PATH + "/{assignment}"
GROUPS_PATH = "/v1.0/groups"

# Devices per import call. Intune's own upload takes 500 rows per file; a smaller batch keeps the
# one-by-one retry of a refused batch cheap.
BATCH_SIZE = 100
IDENTITIES_PAGE = 500
# Microsoft's import usually finishes within minutes; the periodic synchronisation keeps polling
# whatever is still pending after these rounds.
POLL_SECONDS = 60
MAX_POLL_ROUNDS = 30
# Per-device refusals: the request was understood and this device (or batch) is wrong.
DEVICE_ERROR_STATUSES = {400, 409, 422}

ERROR_HINTS = {
    "ZtdDeviceAlreadyAssigned": "The device is already registered for Autopilot in this tenant.",
    "ZtdDeviceAssignedToOtherTenant": "The device is registered to another organisation: ask it (or the "
                                      "reseller) to deregister it first.",
    "ZtdDeviceDuplicated": "The same device appears twice in the import.",
}


# --- the whole run --------------------------------------------------------------------------------

def synchronise(*, retry_refused=False):
    """Push profiles and new devices, poll pending imports, pull statuses. Returns how many imports
    are still pending at Microsoft. Raises graph.ConnectorDisabled, graph.Retry or graph.GraphError
    (the last two recorded on the connector)."""
    connector = GraphConnector.get()
    with _recorded(connector):
        client = graph.Client(connector)
        push_profiles(client)
        push_devices(client, retry_refused=retry_refused)
        pending = poll_imports(client)
        pull_status(client)
    return pending


def check_imports():
    """Poll pending imports; once none is left, pull statuses. Returns how many are still pending."""
    connector = GraphConnector.get()
    with _recorded(connector):
        client = graph.Client(connector)
        pending = poll_imports(client)
        if not pending:
            pull_status(client)
    return pending


def test_connection(connector):
    """A token and one read, with the settings as saved (even while the connector is off). Returns
    a sentence for the administrator; raises graph.Retry or graph.GraphError."""
    client = graph.Client(connector, require_enabled=False)
    client.token()
    client.get(IDENTITIES_PATH + "?$top=1")
    return gettext("Connected: Microsoft Graph gave a token and the Autopilot devices can be read.")


class _recorded:
    """Notes the run's outcome on the connector (shown on its page)."""

    def __init__(self, connector):
        self.connector = connector

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            self.connector.record_sync()
        elif isinstance(exc, graph.ConnectorDisabled):
            pass
        elif isinstance(exc, graph.Retry):
            self.connector.record_sync(error=f"{exc.message} (will try again)")
        elif isinstance(exc, graph.GraphError):
            self.connector.record_sync(error=exc.message)
        return False


# --- devices --------------------------------------------------------------------------------------

def devices_to_push(*, retry_refused=False):
    never = AutopilotDevice.objects.filter(graph_sync__isnull=True)
    if retry_refused:
        never = never | AutopilotDevice.objects.filter(graph_sync__status=GraphDeviceSync.Status.REFUSED)
    return never.order_by("pk")


def push_devices(client, *, retry_refused=False):
    """Import the devices Microsoft does not have yet. Returns how many were sent."""
    ids = list(devices_to_push(retry_refused=retry_refused).values_list("pk", flat=True))
    sent = 0
    for start in range(0, len(ids), BATCH_SIZE):
        batch = []
        for device in AutopilotDevice.objects.filter(pk__in=ids[start:start + BATCH_SIZE]).select_related("graph_sync"):
            if not "".join(device.hardware_hash.split()):
                _row(device).refuse(name="NoHardwareHash", message="Microsoft's service needs the hardware hash: "
                                                                    "import the device again with it.")
                continue
            batch.append(device)
        if batch:
            _import_batch(client, batch)
            sent += len(batch)
    return sent


def device_body(device, import_id):
    """An importedWindowsAutopilotDeviceIdentity, as the v1.0 import action takes it."""
    return {
        "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
        "importId": import_id,
        "serialNumber": device.serial_number,
        "productKey": device.product_id,
        "hardwareIdentifier": "".join(device.hardware_hash.split()),  # base64, as Edm.Binary is in JSON
        "groupTag": device.group_tag,
        "assignedUserPrincipalName": device.assigned_user,
        "state": {
            "@odata.type": "microsoft.graph.importedWindowsAutopilotDeviceIdentityState",
            "deviceImportStatus": "pending",
            "deviceRegistrationId": "",
            "deviceErrorCode": 0,
            "deviceErrorName": "",
        },
    }


def _import_batch(client, devices):
    import_id = str(uuid.uuid4())
    body = {"importedWindowsAutopilotDeviceIdentities": [device_body(device, import_id) for device in devices]}
    try:
        answer = client.post(IMPORT_PATH, body)
    except graph.GraphError as exc:
        if isinstance(exc, graph.AuthError) or exc.status not in DEVICE_ERROR_STATUSES:
            raise
        if len(devices) > 1:
            logger.info("Graph refused an import batch of %d (%s); sending its devices one by one",
                        len(devices), exc.code or exc.status)
            for device in devices:
                _import_batch(client, [device])
            return
        _row(devices[0]).refuse(code=exc.status, name=exc.code, message=exc.message)
        return
    records = {str(record.get("serialNumber", "")).strip().upper(): record
               for record in (answer or {}).get("value", []) if isinstance(record, dict)}
    for device in devices:
        record = records.get(device.serial_key)
        row = _row(device)
        if record is None or not record.get("id"):
            row.refuse(name="NotInAnswer", message="Microsoft's answer to the import did not list this device.")
            continue
        row.mark_pushed(str(record["id"]))
        _apply_import_state(client, row, record)


def poll_imports(client):
    """Ask Microsoft how each pending import went. Returns how many are still pending."""
    pending = 0
    rows = GraphDeviceSync.objects.filter(status=GraphDeviceSync.Status.PENDING).select_related("device")
    for row in rows.order_by("pk"):
        try:
            record = client.get(IMPORTED_PATH.format(id=quote(row.imported_id, safe="")))
        except graph.GraphError as exc:
            if exc.status != 404 or isinstance(exc, graph.AuthError):
                raise
            row.refuse(code=404, name="ImportRecordMissing",
                       message="Microsoft no longer has this import (removed in Intune?): push the device again.")
            continue
        if _apply_import_state(client, row, record or {}) == GraphDeviceSync.Status.PENDING:
            pending += 1
    return pending


def _apply_import_state(client, row, record):
    """Record the import's deviceImportStatus (unknown, pending, partial, complete, error)."""
    state = record.get("state") or {}
    status = state.get("deviceImportStatus", "")
    if status == "complete":
        row.mark_registered()
        if state.get("deviceRegistrationId") and not row.identity_id:
            row.identity_id = str(state["deviceRegistrationId"])[:64]
            row.save(update_fields=["identity_id"])
    elif status == "error":
        code, name = state.get("deviceErrorCode"), state.get("deviceErrorName") or ""
        hint = ERROR_HINTS.get(name, "")
        row.refuse(code=code if isinstance(code, int) else None, name=name,
                   message=" ".join(filter(None, [f"Microsoft refused the device: {name or 'error'} ({code}).", hint])))
    else:
        row.still_pending()
        return row.status
    _delete_import_record(client, record.get("id"))
    return row.status


def _delete_import_record(client, imported_id):
    # Finished import records serve nobody; Intune deletes its own too.
    if not imported_id:
        return
    try:
        client.delete(IMPORTED_PATH.format(id=quote(str(imported_id), safe="")))
    except graph.GraphError as exc:
        if exc.status != 404 or isinstance(exc, graph.AuthError):
            raise


def _row(device):
    try:
        return device.graph_sync
    except GraphDeviceSync.DoesNotExist:
        return GraphDeviceSync(device=device)


# --- status ---------------------------------------------------------------------------------------

def pull_status(client):
    """Read every Autopilot device of the tenant and record, for ours, its registration, profile
    assignment and enrollment state. Returns how many of ours were found."""
    found = 0
    url = f"{IDENTITIES_PATH}?$top={IDENTITIES_PAGE}"
    while url:
        page = client.get(url) or {}
        devices = _apply_identities([item for item in page.get("value", []) if isinstance(item, dict)])
        for device, identity in devices:
            _update_properties(client, device, identity)
        found += len(devices)
        url = page.get("@odata.nextLink")
    return found


def _update_properties(client, device, identity):
    """A group tag or assigned user changed here (a later import) goes to Microsoft too; empty values
    here never clear Microsoft's."""
    changes = {}
    if device.group_tag and device.group_tag != identity.get("groupTag"):
        changes["groupTag"] = device.group_tag
    if device.assigned_user and device.assigned_user.lower() != str(identity.get("userPrincipalName") or "").lower():
        changes["userPrincipalName"] = device.assigned_user
    if not changes or not identity.get("id"):
        return
    try:
        client.post(UPDATE_PROPERTIES_PATH.format(id=quote(str(identity["id"]), safe="")), changes)
    except graph.GraphError as exc:
        if isinstance(exc, graph.AuthError) or exc.status not in DEVICE_ERROR_STATUSES:
            raise
        GraphDeviceSync.objects.filter(device=device).update(
            error_code=exc.status, error_name=exc.code[:128],
            error_message=f"Microsoft refused the new group tag or user: {exc.message}")


def _apply_identities(identities):
    """Record the identities of our devices; returns [(device, identity)] for them."""
    by_serial = {str(item.get("serialNumber", "")).strip().upper(): item for item in identities}
    by_serial.pop("", None)
    devices = AutopilotDevice.objects.filter(serial_key__in=by_serial).select_related("graph_sync")
    for device in devices:
        identity = by_serial[device.serial_key]
        identity_id = str(identity.get("id", ""))[:64]
        with transaction.atomic():
            _row(device).record_identity(
                identity_id=identity_id,
                profile_assignment_status=str(identity.get("deploymentProfileAssignmentStatus") or "")[:40],
                enrollment_state=str(identity.get("enrollmentState") or "")[:40],
                last_contacted_at=_timestamp(identity.get("lastContactedDateTime")),
            )
            if identity_id and device.ztd_id != identity_id:
                AutopilotDevice.objects.filter(pk=device.pk).update(ztd_id=identity_id)
    return [(device, by_serial[device.serial_key]) for device in devices]


def _timestamp(value):
    """Graph's DateTimeOffset; its "never" is year 1."""
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.year < 2000:
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.UTC)


# --- profiles -------------------------------------------------------------------------------------

def profile_body(profile):
    """A windowsAutopilotDeploymentProfile (beta). Entra join is azureADWindowsAutopilotDeploymentProfile,
    hybrid join activeDirectoryWindowsAutopilotDeploymentProfile. Uses outOfBoxExperienceSetting, locale
    and preprovisioningAllowed: their older twins (outOfBoxExperienceSettings, language, enableWhiteGlove)
    are read-only since May 2024."""
    hybrid = profile.join_type == Profile.JoinType.HYBRID
    body = {
        "@odata.type": "#microsoft.graph." + ("activeDirectoryWindowsAutopilotDeploymentProfile" if hybrid
                                              else "azureADWindowsAutopilotDeploymentProfile"),
        "displayName": profile.name[:200],
        "description": profile.description[:1500],
        "locale": profile.language or "os-default",
        "deviceNameTemplate": profile.device_name_template,
        "deviceType": "holoLens" if profile.device_type == Profile.DeviceType.HOLOLENS else "windowsPc",
        "preprovisioningAllowed": profile.allow_pre_provisioning,
        "hardwareHashExtractionEnabled": profile.convert_all_targeted_devices,
        "outOfBoxExperienceSetting": {
            "privacySettingsHidden": profile.hide_privacy_settings,
            "eulaHidden": profile.hide_eula,
            "userType": profile.user_account_type,  # "standard" / "administrator", as Graph names them
            # Self-deploying is Graph's "shared" device usage: no user signs in during setup.
            "deviceUsageType": "shared" if profile.is_self_deploying else "singleUser",
            "keyboardSelectionPageSkipped": profile.configure_keyboard and bool(profile.language),
            "escapeLinkHidden": profile.hide_change_account_options,
        },
    }
    if hybrid:
        body["hybridAzureADJoinSkipConnectivityCheck"] = False
    return body


def _profile_digest(profile, body):
    tags = sorted(rule.tag for rule in profile.group_tags.all())
    payload = json.dumps([body, tags, profile.is_default], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def push_profiles(client):
    """Create or update each profile that changed since it was last pushed, and its assignments.
    Returns how many were pushed."""
    pushed = 0
    for profile in Profile.objects.prefetch_related("group_tags").select_related("graph_sync"):
        try:
            sync = profile.graph_sync
        except GraphProfileSync.DoesNotExist:
            sync = GraphProfileSync(profile=profile)
        body = profile_body(profile)
        digest = _profile_digest(profile, body)
        if sync.graph_id and sync.pushed_digest == digest and not sync.error_message:
            continue
        try:
            if sync.graph_id:
                client.patch(PROFILE_PATH.format(id=quote(sync.graph_id, safe="")), body)
            else:
                created = client.post(PROFILES_PATH, body) or {}
                sync.graph_id = str(created.get("id", ""))[:64]
                sync.save()
            assign_profile(client, sync.graph_id, profile)
        except graph.GraphError as exc:
            if isinstance(exc, graph.AuthError) or exc.status not in DEVICE_ERROR_STATUSES:
                raise
            sync.error_message = f"Microsoft refused the profile: {exc.message}"
            sync.save()
            continue
        sync.pushed_digest, sync.pushed_at, sync.error_message = digest, timezone.now(), ""
        sync.save()
        pushed += 1
    return pushed


def assign_profile(client, graph_id, profile):
    """Make the profile's assignments in Graph exactly: one per group tag, all devices for the default."""
    wanted = {}
    for rule in profile.group_tags.all():
        group_id = tag_group(client, rule.tag)
        wanted[("group", group_id)] = {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}
    if profile.is_default:
        wanted[("allDevices",)] = {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}
    path = ASSIGNMENTS_PATH.format(id=quote(graph_id, safe=""))
    for assignment in (client.get(path) or {}).get("value", []):
        key = _target_key(assignment.get("target") or {})
        if wanted.pop(key, None) is None:
            client.delete(ASSIGNMENT_PATH.format(id=quote(graph_id, safe=""),
                                                 assignment=quote(str(assignment.get("id", "")), safe="")))
    for target in wanted.values():
        client.post(path, {"@odata.type": "#microsoft.graph.windowsAutopilotDeploymentProfileAssignment",
                           "target": target})


def _target_key(target):
    kind = target.get("@odata.type", "").rsplit(".", 1)[-1]
    if kind == "groupAssignmentTarget":
        return ("group", target.get("groupId"))
    if kind == "allDevicesAssignmentTarget":
        return ("allDevices",)
    return (kind, target.get("groupId"))


def tag_group(client, tag):
    """The Entra group id for a group tag, creating its dynamic device group the first time."""
    known = GraphTagGroup.objects.filter(tag=tag).first()
    if known:
        return known.group_id
    created = client.post(GROUPS_PATH, tag_group_body(tag)) or {}
    return GraphTagGroup.objects.create(tag=tag, group_id=str(created.get("id", ""))[:64]).group_id


def tag_group_body(tag):
    escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
    slug = re.sub(r"[^A-Za-z0-9-]", "", tag)[:30]
    return {
        "displayName": f"Autopilot group tag {tag}"[:256],
        "description": "Autopilot devices imported with this group tag (made by mdmportal).",
        "mailEnabled": False,
        "mailNickname": f"autopilot-{slug}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}",
        "securityEnabled": True,
        "groupTypes": ["DynamicMembership"],
        # Autopilot writes the group tag into the device's physical ids as [OrderID]:<tag>.
        "membershipRule": f'(device.devicePhysicalIds -any (_ -eq "[OrderID]:{escaped}"))',
        "membershipRuleProcessingState": "On",
    }
