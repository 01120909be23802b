"""The reconciler: every enrolled device converges on the settings of its
configuration groups.

For one device, `reconcile_device` computes the desired settings (its groups' settings, the group with
the lowest priority number winning a LocURI that several groups set), compares them with the device's
DeviceSettingState rows and queues, through management.commands.queue():

- the group setting's verb (Replace, or Add for nodes that must be created) for a new setting, and
  Replace for a changed value once a value has reached the device;
- for a setting that left the device: Delete (Policy CSP: back to "not configured"), or Replace with
  the reset value for nodes without Delete (TenantLockdown), or nothing when the setting says so.

A setting whose command was sent and not yet answered is never queued again; one still waiting in the
queue is withdrawn and replaced by the new value. A setting the device refused (a status code) is not
retried on its own, so a bad value does not go back on every check-in: `retry_failed=True` (the
console's "Re-apply settings") does that. Commands that never got an answer (timed out, cancelled)
are queued again.

The state of a setting is read from its command (DeviceSettingState.state), which omadm closes with
the device's Status: no hook on command completion is needed.

Runs: after commit of any change to a group, its settings or memberships (`schedule_group`,
`schedule_devices`, through a Celery task) and at the start of an OMA-DM session (`checked_in`,
called by the OMA-DM endpoint before it reads the queue) when something may have changed since the
device's last reconciliation: its DeviceReconciliation row says at which ConfigurationRevision, with
which memberships and which inputs that was (`may_be_needed`). The revision goes up with every saved
or deleted group or setting, in the transaction of the change (the signal receiver below), so a
change is seen at the device's next session even when the Celery task scheduled for it was lost. A
device just enrolled has no such row: its first session, moments after the enrollment, reconciles
it and sends its groups' settings in its first reply.
"""
import hashlib
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from enrollment.models import Device

from . import checkin_sql, commands
from .models import ConfigurationGroup, ConfigurationRevision, DeviceCommand, DeviceSettingState, GroupSetting

logger = logging.getLogger(__name__)

RETRYABLE = {DeviceCommand.Status.TIMED_OUT, DeviceCommand.Status.CANCELLED}


@dataclass(frozen=True)
class Desired:
    loc_uri: str
    label: str
    format: str
    value: str
    verb: str
    removal: str
    reset_value: str
    group: ConfigurationGroup


@dataclass
class Outcome:
    queued: int = 0
    waiting: int = 0
    forgotten: int = 0


def groups_of(device):
    """The configuration groups `device` belongs to, highest priority first."""
    if device.status != Device.Status.ENROLLED:
        return []
    direct = Q(devices=device)
    if device.user_id:
        direct |= Q(users=device.user_id)
    direct_ids = set(ConfigurationGroup.objects.filter(direct).values_list("pk", flat=True))
    candidates = ConfigurationGroup.objects.filter(Q(pk__in=direct_ids) | Q(rule_enabled=True))
    return [group for group in candidates.order_by("priority", "pk")
            if group.pk in direct_ids or group.matches_rule(device)]


def desired_settings(device):
    """{LocURI: Desired} for `device`; the first group (by priority) to set a LocURI wins it.

    One query, whatever the number of groups: the settings of the groups the device may belong to (by
    hand, through its user, or any group with a rule), with their group, in the order of groups_of;
    the rules are then matched here, as groups_of does. Groups without settings want nothing."""
    if device.status != Device.Status.ENROLLED:
        return {}
    candidates = checkin_sql.group_settings_for(device.pk, device.user_id)
    desired, matches = {}, {}
    for setting in candidates:
        group = setting.group
        if group.pk not in matches:
            matches[group.pk] = setting.direct or group.matches_rule(device)
        if matches[group.pk]:
            desired.setdefault(setting.loc_uri, Desired(
                setting.loc_uri, setting.label[:255], setting.format, setting.value, setting.verb,
                setting.removal, setting.reset_value, group))
    return desired


def setting_states(device):
    """{LocURI: DeviceSettingState} of `device`, with their commands (as device.setting_states would)."""
    # Read at every check-in (checked_in): explicit SQL (checkin_sql), like the endpoint's own reads.
    states = checkin_sql.setting_states(device.pk)
    for state in states:
        state.device = device
    return {state.loc_uri: state for state in states}


def reconcile_device(device, *, retry_failed=False, actor=None, locked=False):
    """Queue what `device` needs to converge on its groups' settings. Returns an Outcome.

    `locked`: the caller read `device` with SELECT ... FOR UPDATE in its open transaction (the OMA-DM
    endpoint does, for every message), so it is current and this need not read it again."""
    outcome = Outcome()
    # No savepoint inside the check-in's transaction (two queries per session): a failure there fails
    # the whole message anyway.
    with transaction.atomic(savepoint=False):
        # The row lock serialises reconcilers of one device, so a setting is never queued twice.
        if not locked:
            device = Device.objects.select_for_update().filter(pk=device.pk).first()
        if device is None or device.status != Device.Status.ENROLLED:
            return outcome
        # Before the reads of the groups: a change committed after it is seen at the next session.
        checkin_sql.mark_reconciled(device.pk, fingerprint(device))
        desired = desired_settings(device)
        states = setting_states(device)
        for loc_uri, want in desired.items():
            _converge(device, states.get(loc_uri), want, retry_failed, actor, outcome)
        for loc_uri, state in states.items():
            if loc_uri not in desired:
                _withdraw(device, state, actor, outcome)
    if outcome.queued:
        logger.info("reconcile: device %s: %s queued, %s waiting", device.pk, outcome.queued, outcome.waiting)
    return outcome


# Read with the device at an OMA-DM session's first message (omadm._first_message_flags).
RECONCILED_AS, NEEDS_RECONCILER = "reconciled_as", "settings_need_reconciler"
CHECK_IN_FLAGS = [
    checkin_sql.Flag(RECONCILED_AS, checkin_sql.reconciled_as_sql, value=lambda fingerprint: fingerprint),
    checkin_sql.Flag(NEEDS_RECONCILER, checkin_sql.settings_need_reconciler_sql),
]


def fingerprint(device):
    """A digest of the device's inputs to groups_of (ConfigurationGroup.RULE_INPUTS), as the database holds
    them (a choice as its value, None apart from any text)."""
    inputs = "\x1f".join("\x00" if value is None else str(value)
                          for value in (getattr(device, name) for name in ConfigurationGroup.RULE_INPUTS))
    return hashlib.sha256(inputs.encode()).hexdigest()


def may_be_needed(device):
    """Whether reconciling `device` may queue or forget anything: False only when it was read with
    CHECK_IN_FLAGS and its last reconciliation was at the current revision, with the same inputs, and
    none of its settings needs the reconciler."""
    if not hasattr(device, RECONCILED_AS):
        return True
    return getattr(device, NEEDS_RECONCILER) or getattr(device, RECONCILED_AS) != fingerprint(device)


def checked_in(device, *, locked=False):
    """The hook for the OMA-DM endpoint: call it at each check-in of `device`, before reading its queue,
    so that settings of groups it joined by rule since (new name, OS version) go out in this session.
    `locked` as for reconcile_device."""
    return reconcile_device(device, locked=locked)


def _converge(device, state, want, retry_failed, actor, outcome):
    if state is None:
        state = DeviceSettingState(device=device, loc_uri=want.loc_uri)
        _send(state, want, want.verb, actor, outcome)
        return
    same = not state.removing and (state.value, state.format) == (want.value, want.format)
    if same:
        _adopt(state, want)
        command = state.command
        resend = command is None or command.status in RETRYABLE or (
            retry_failed and state.state == DeviceSettingState.State.FAILED)
        if resend:
            _send(state, want, _verb(state, want), actor, outcome)
        return
    if _in_flight(state, outcome):
        return
    _send(state, want, _verb(state, want), actor, outcome)


def _withdraw(device, state, actor, outcome):
    """The setting no longer applies to the device: take it back, or forget it if it never got there."""
    if state.removing:
        if state.state == DeviceSettingState.State.REMOVED:
            state.delete()
            outcome.forgotten += 1
        elif state.command is None or state.command.status in RETRYABLE:
            _send_removal(state, actor, outcome)
        return
    if _in_flight(state, outcome):
        return
    if not state.applied_once or state.removal == GroupSetting.Removal.LEAVE:
        state.delete()
        outcome.forgotten += 1
        return
    _send_removal(state, actor, outcome)


def _in_flight(state, outcome):
    """True when the state's command is out with the device (wait for its answer); a command still in
    the queue is withdrawn so that the new one replaces it. Records whether a value got through."""
    command = state.command
    if command is None:
        return False
    if command.status == DeviceCommand.Status.SENT:
        outcome.waiting += 1
        return True
    if command.status == DeviceCommand.Status.QUEUED:
        command.cancel()
    elif state.state == DeviceSettingState.State.APPLIED:
        state.applied_once = True
    return False


def _verb(state, want):
    if state.removing and state.state == DeviceSettingState.State.REMOVED:
        return want.verb  # the node is gone again: create it as the first time
    return GroupSetting.Verb.REPLACE if state.applied_once else want.verb


def _adopt(state, want):
    """Same value from another group, or a renamed label: keep the rows honest without a command."""
    changed = (state.group_id, state.label, state.removal, state.reset_value) != (
        want.group.pk, want.label, want.removal, want.reset_value)
    if changed:
        state.group, state.label, state.removal, state.reset_value = want.group, want.label, want.removal, want.reset_value
        state.save(update_fields=["group", "label", "removal", "reset_value"])


def _send(state, want, verb, actor, outcome):
    command = _queue(state.device, verb, want.loc_uri, want.format, want.value, actor, f"policy:{want.group.pk}")
    if command is None:
        return
    state.label, state.format, state.value, state.group = want.label, want.format, want.value, want.group
    state.removal, state.reset_value, state.removing = want.removal, want.reset_value, False
    state.command, state.updated_at = command, timezone.now()
    state.save()
    outcome.queued += 1


def _send_removal(state, actor, outcome):
    if state.removal == GroupSetting.Removal.RESET:
        command = _queue(state.device, GroupSetting.Verb.REPLACE, state.loc_uri, state.format, state.reset_value,
                         actor, "policy:removed")
    else:
        command = _queue(state.device, DeviceCommand.Verb.DELETE, state.loc_uri, "", "", actor, "policy:removed")
    if command is None:
        return
    state.removing, state.command, state.group, state.updated_at = True, command, None, timezone.now()
    state.save(update_fields=["removing", "command", "group", "updated_at", "applied_once"])
    outcome.queued += 1


def _queue(device, verb, target, format, data, actor, source):
    try:
        return commands.queue(device, verb, target, format=format, data=data, actor=actor, source=source)
    except commands.CommandError as error:
        # Group settings are validated when saved; this only happens for a device that left meanwhile.
        logger.warning("reconcile: device %s: %s %s not queued: %s", device.pk, verb, target, error)
        return None


# -- scheduling ------------------------------------------------------------------------------------

def affected_by(group):
    """Devices whose desired settings a change of `group` can alter: its members now, and the devices
    holding a value that came from it (they may have left it)."""
    members = set(group.member_reasons())
    holders = set(DeviceSettingState.objects.filter(group=group).values_list("device_id", flat=True))
    return members | holders


def schedule_devices(device_ids):
    """Reconcile these devices in the background once the current transaction commits."""
    from .tasks import reconcile_devices

    ids = sorted(set(device_ids))
    if ids:
        transaction.on_commit(lambda: reconcile_devices.delay(ids))


def schedule_group(group):
    """Call after saving a group, its settings or memberships, and before deleting it (the ids are
    taken now, while the memberships still exist)."""
    schedule_devices(affected_by(group))


def compliance(group):
    """Per setting of `group`: how many of its members have it applied, pending, failed, or get that
    LocURI from a higher-priority group. [(setting, {state: count, "overridden": n})]."""
    members = set(group.member_reasons())
    rows = DeviceSettingState.objects.filter(device_id__in=members).select_related("command")
    by_uri = {}
    for row in rows:
        by_uri.setdefault(row.loc_uri, []).append(row)
    report = []
    for setting in group.settings.all():
        counts = {"applied": 0, "pending": 0, "failed": 0, "overridden": 0, "not_evaluated": 0}
        seen = set()
        for row in by_uri.get(setting.loc_uri, []):
            seen.add(row.device_id)
            if row.removing or row.group_id != group.pk:
                counts["overridden"] += 1
            elif row.value != setting.value:
                counts["pending"] += 1  # the new value is waiting for the device's answer to the old one
            else:
                counts[row.state] += 1
        counts["not_evaluated"] = len(members - seen)
        report.append((setting, counts))
    return report


def configuration_changed(sender, **kwargs):
    """post_save and post_delete of a group or a setting: every device's groups may differ."""
    ConfigurationRevision.objects.filter(pk=1).update(number=F("number") + 1)
