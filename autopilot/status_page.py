"""Applying an Autopilot profile to a device that just enrolled, and driving its Enrollment Status
Page to the end, in its device phase and, for Store apps, its account-setup (user) phase
(Windows Autopilot Enrollment Status Page). DMClient's FirstSyncStatus is described in MicrosoftDocs/windows-itpro-docs,
windows/client-management/mdm/dmclient-csp.md, under ./Device/… and ./User/…/DMClient/Provider/{ProviderID}.

`apply` runs when autopilot/matching.py links the enrollment, in the same transaction: at enrollment
(ZTD id, offline correlator) or early in the first OMA-DM session (serial number, hardware hash), so the
first session delivers, in this order (the queue's order):

1. the device phase's nodes under ./Device/Vendor/MSFT/DMClient/Provider/{ProviderID}/FirstSyncStatus/:
   ExpectedPolicies (the LocURIs of the settings of the device's groups, and TenantLockdown),
   ExpectedMSIAppPackages (`…/EnterpriseDesktopAppManagement/MSI/{ProductID}/Status;1` per MSI app),
   TimeOutUntilSyncFailure (minutes) and BlockInStatusPage (the profile's flags). Lists are chr with
   U+F000 between entries. A profile without the page sets SkipDeviceStatusPage and SkipUserStatusPage
   instead; a profile with the page but nothing for the user phase (no Store app) sets
   SkipUserStatusPage, so that the account-setup page never waits for a server that has nothing to
   send it.
2. TenantLockdown (Replace ./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE bool true) when asked;
3. the essential apps (autopilot/essential_apps.py): MSI apps in the device scope, Store apps in the
   user scope, which the management endpoint holds until a user is signed in;
4. the settings of the groups it joined (management/reconcile.py, run at once).

Two phases. Store apps can only complete once a user signed in, after the device phase, so they are
never items of the device phase (which would otherwise wait for them until its time-out): they are
items of the user phase (ProvisioningItem.Phase.USER, AutopilotEnrollment.user_esp_*). FirstSyncStatus
has both: the device scope's ExpectedPolicies/ExpectedMSIAppPackages/ExpectedModernAppPackages for the
device page, and the same lists plus ServerHasFinishedProvisioning, WasDeviceSuccessfullyProvisioned
and IsSyncDone under ./User/ for the per-user account-setup page; TimeOutUntilSyncFailure,
BlockInStatusPage and the Skip nodes exist in the device scope only. ExpectedModernAppPackages (either
scope) names `…/EnterpriseModernAppManagement/AppManagement/AppStore/{PackageFamilyName}/
{PackageFullName}/Name;n`: the package full name (version, architecture) is only known once the app is
installed, so Store apps are not listed there. Instead, as dmclient-csp allows the server to "change its
mind" until it sets ServerHasFinishedProvisioning, the user-scope ServerHasFinishedProvisioning is held
until the Store apps are done, and then set with WasDeviceSuccessfullyProvisioned and IsSyncDone.
A self-deploying profile has no user phase: it cannot have Store apps (autopilot/models.py).

`checked_in` runs at the start of each of the device's sessions (management/omadm.py). It starts the
device phase's time-out clock at the first one and the user phase's at the first one with a signed-in
user (LoginStatus "user"), reads app installs, settles each ProvisioningItem from its setting, command
or install, and ends a phase's page when every item settled, when an item the profile counts failed, or
at the time-out: Replace ServerHasFinishedProvisioning true, WasDeviceSuccessfullyProvisioned 1 or 0,
then IsSyncDone true, in that phase's scope. Those three are what third-party servers forget, leaving
the page to hang: they are re-queued until the device answers IsSyncDone, and `finish_overdue` (every
minute, Celery beat) ends the pages of devices that stopped checking in, so they go out at the next
contact. IsSyncDone cannot be set twice (true → true is refused), so it is never queued again once
answered.

The account setup in OOBE. Until the signed-in user's MDM context exists, Windows answers 405 (Command
not allowed) to every ./User/ command. Such an answer is "not yet", never a failed setting, app or page:
a Store install refused so goes out again at the next session (autopilot/essential_apps.py), and so does
the user-scope release (ServerHasFinishedProvisioning, WasDeviceSuccessfullyProvisioned, IsSyncDone),
at each session until the device answers it, for as long as the page's time-out from the page's end.
Past that the release is given up (audited): the page is over, and a page that succeeded on our side is
recorded as timed out, since Windows, never told the server had finished, ended it as failed.

Later users. The server releases the account-setup page once, for the user who set the device up; a
person signing in for the first time afterwards would wait at "Account setup: identifying" for a
release that never comes, until the time-out. So once that page's release was answered (or given up),
SkipUserStatusPage (device only) is set to true; `skip_user_page_command` keeps it for the device page
and the API, as it does for the SkipUserStatusPage of a profile with nothing for the account setup.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists
from django.utils import timezone

from accounts.models import AuditEvent
from management import commands, reconcile
from enrollment.models import Device
from management.models import DeviceCommand, DeviceSettingState

from . import essential_apps
from .models import AppInstall, AutopilotEnrollment, EssentialApp, ProvisioningItem

logger = logging.getLogger(__name__)

LIST_DELIMITER = "\uf000"  # CSP_LIST_DELIMITER
LOCKDOWN = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"
SOURCE_ESP, SOURCE_FINISH, SOURCE_LOCKDOWN = "autopilot:esp", "autopilot:esp-finish", "autopilot:lockdown"
Item, State, Phase = ProvisioningItem.Kind, ProvisioningItem.State, ProvisioningItem.Phase
EspState = AutopilotEnrollment.EspState
SCOPES = {Phase.DEVICE: "./Device/", Phase.USER: "./User/"}
SIGNED_IN = "user"  # the 1224 LoginStatus of a device with a user signed in (management/omadm.py)


def first_sync(node, phase=Phase.DEVICE):
    return (f"{SCOPES[phase]}Vendor/MSFT/DMClient/Provider/{settings.ENROLLMENT_PROVIDER_ID}"
            f"/FirstSyncStatus/{node}")


# --- applying the profile -----------------------------------------------------------------------------

def apply(link):
    """Join the profile's groups, queue the status page, TenantLockdown and the apps, and mark the link
    applied. Call inside a transaction. Raises commands.CommandError when the device cannot be managed."""
    profile, device = link.profile, link.device
    if profile is None or link.applied_at is not None:
        return link
    groups = list(profile.configuration_groups.all())
    if groups:
        device.configuration_groups.add(*groups)
    desired = reconcile.desired_settings(device)
    apps = list(profile.essential_apps.all())
    msi_apps = [app for app in apps if app.kind == EssentialApp.Kind.MSI]
    policies = list(desired)
    if profile.tenant_lockdown and LOCKDOWN not in desired:
        policies.append(LOCKDOWN)
    # Only Store apps make an account-setup (user) phase; without them nothing would ever end that page.
    user_phase = not profile.is_self_deploying and any(app.kind == EssentialApp.Kind.STORE for app in apps)
    skip_user_page = None
    if profile.esp_enabled:
        _queue_status_page(device, profile, policies, msi_apps)
        if not user_phase:
            skip_user_page = _queue(device, first_sync("SkipUserStatusPage"), "bool", "true", SOURCE_ESP)
    else:
        _queue(device, first_sync("SkipDeviceStatusPage"), "bool", "true", SOURCE_ESP)
        skip_user_page = _queue(device, first_sync("SkipUserStatusPage"), "bool", "true", SOURCE_ESP)
    items = [ProvisioningItem(enrollment=link, kind=Item.POLICY, key=uri, label=desired[uri].label)
             for uri in desired]
    if profile.tenant_lockdown and LOCKDOWN not in desired:  # else a group of the device sets it already
        lockdown = _queue(device, LOCKDOWN, "bool", "true", SOURCE_LOCKDOWN)
        items.append(ProvisioningItem(enrollment=link, kind=Item.POLICY, key=LOCKDOWN,
                                      label="Require network in OOBE (TenantLockdown)", command=lockdown))
    for app in apps:
        install = essential_apps.queue_install(device, app)
        kind = Item.MSI if app.kind == EssentialApp.Kind.MSI else Item.MODERN
        # Store apps wait for a signed-in user; a self-deploying device has none, so there they are
        # device items (failed at once by queue_install) rather than a user phase that never starts.
        phase = Phase.USER if kind == Item.MODERN and user_phase else Phase.DEVICE
        items.append(ProvisioningItem(enrollment=link, kind=kind, key=install.identifier, label=app.name[:255],
                                      app_install=install, phase=phase))
    if profile.esp_enabled:
        ProvisioningItem.objects.bulk_create(items)
    link.mark_applied(track_esp=profile.esp_enabled,
                      track_user_esp=profile.esp_enabled and user_phase,
                      timeout_minutes=profile.esp_timeout_minutes, fail_on=profile.esp_fail_on)
    if skip_user_page is not None:
        link.skip_user_page_command = skip_user_page
        link.save(update_fields=["skip_user_page_command"])
    reconcile.reconcile_device(device)
    AuditEvent.record(None, "autopilot.profile_applied", device, detail={
        "profile": profile.name, "groups": [g.name for g in groups], "tenant_lockdown": profile.tenant_lockdown,
        "apps": [app.name for app in apps], "status_page": profile.esp_enabled, "expected": len(items),
    })
    return link


def _queue_status_page(device, profile, policies, msi_apps):
    if policies:
        _queue(device, first_sync("ExpectedPolicies"), "chr", LIST_DELIMITER.join(policies), SOURCE_ESP)
    if msi_apps:
        packages = [f"{essential_apps.msi_node(app.product_code)}/Status;1" for app in msi_apps]
        _queue(device, first_sync("ExpectedMSIAppPackages"), "chr", LIST_DELIMITER.join(packages), SOURCE_ESP)
    _queue(device, first_sync("TimeOutUntilSyncFailure"), "int", str(profile.esp_timeout_minutes), SOURCE_ESP)
    _queue(device, first_sync("BlockInStatusPage"), "int", str(profile.block_in_status_page), SOURCE_ESP)


def _queue(device, target, format, data, source):
    return commands.queue(device, DeviceCommand.Verb.REPLACE, target, format=format, data=data, source=source)


# --- following the status page ----------------------------------------------------------------------

def has_setup(connection, device_id_column):
    """SQL: whether the device (its id column in the OMA-DM endpoint's read of the device) has an
    Autopilot setup to follow: `checked_in`'s condition (management.omadm.register_session_start)."""
    quote = connection.ops.quote_name
    return (f"EXISTS (SELECT 1 FROM {quote(AutopilotEnrollment._meta.db_table)} ae "
            f"WHERE ae.{quote(AutopilotEnrollment._meta.get_field('device').column)} = {device_id_column})")


def checked_in(device, now=None):
    """The hook for the OMA-DM endpoint, at the start of each session of `device` that has_setup."""
    now = now or timezone.now()
    # One query for a device that is not Autopilot (apps are only queued for Autopilot devices).
    # Locked: two sessions of one device at once must not both end the page.
    open_installs = AppInstall.objects.filter(device=device, state__in=AppInstall.OPEN)
    link = (AutopilotEnrollment.objects.select_for_update().filter(device=device)
            .annotate(has_open_installs=Exists(open_installs)).first())
    if link is None:
        return None
    link.device = device
    if link.has_open_installs:
        essential_apps.poll(device, now)
    _follow(link, Phase.DEVICE, now)
    # The account-setup page starts once a user is signed in: its commands are held until then.
    if device.login_status == SIGNED_IN:
        _follow(link, Phase.USER, now)
    return link


def _follow(link, phase, now):
    state = link.phase_state(phase)
    if state in (EspState.NONE, EspState.SKIPPED) or getattr(link, link.phase_field(phase, "acknowledged_at")):
        return
    if state == EspState.TRACKING:
        if getattr(link, link.phase_field(phase, "started_at")) is None:
            link.start_clock(now, phase)
        evaluate(link, now, phase)
    else:
        _resend_finish_if_lost(link, phase, now)


def evaluate(link, now, phase=Phase.DEVICE):
    """Settle what can be settled of one phase, then end its page if it is over. Returns its state."""
    items = list(link.items.filter(phase=phase).select_related("command", "app_install"))
    pending = [item for item in items if item.state == State.PENDING]
    states = _setting_states(link.device, pending)
    desired = None
    for item in pending:
        if item.kind == Item.POLICY and item.command_id is None and item.key not in states and desired is None:
            desired = reconcile.desired_settings(link.device)
        outcome = _observe(item, states, desired)
        if outcome is not None:
            item.settle(*outcome, now=now)
    fatal = [item for item in items if item.state == State.FAILED and _counts(item, link.esp_fail_on)]
    deadline = getattr(link, link.phase_field(phase, "deadline"))
    if fatal:
        names = ", ".join(item.label for item in fatal[:3])
        _finish(link, phase, EspState.FAILED, f"Failed: {names}"[:255], now)
    elif all(item.state != State.PENDING for item in items):
        failed = sum(1 for item in items if item.state == State.FAILED)
        note = f"All {len(items)} items done" + (f" ({failed} failed, not counted)" if failed else "")
        _finish(link, phase, EspState.SUCCEEDED, note, now)
    elif deadline is not None and now >= deadline:
        waiting = ", ".join(item.label for item in items if item.state == State.PENDING)
        _finish(link, phase, EspState.TIMED_OUT,
                f"Timed out after {link.esp_timeout_minutes} minutes waiting for: {waiting}"[:255], now)
    return link.phase_state(phase)


def _setting_states(device, items):
    keys = [item.key for item in items if item.kind == Item.POLICY and item.command_id is None]
    if not keys:
        return {}
    return {state.loc_uri: state for state in
            DeviceSettingState.objects.filter(device=device, loc_uri__in=keys).select_related("command")}


def _observe(item, states, desired):
    """(state, detail) once the item is settled, else None."""
    if item.kind in (Item.MSI, Item.MODERN):
        install = item.app_install
        if install is None:
            return State.FAILED, "The app's install record was deleted"
        if install.state == AppInstall.State.INSTALLED:
            return State.DONE, ""
        if install.state == AppInstall.State.FAILED:
            return State.FAILED, install.last_error
        return None
    if item.command_id is not None:
        command = item.command
        if command.status == DeviceCommand.Status.SUCCEEDED:
            return State.DONE, ""
        if command.status in DeviceCommand.FINAL:
            code = f"Status {command.status_code}" if command.status_code is not None else command.get_status_display()
            return State.FAILED, code
        return None
    state = states.get(item.key)
    if state is None:
        if desired is not None and item.key not in desired:
            return State.DONE, "No longer configured for this device"
        return None
    if state.removing:
        return State.DONE, "No longer configured for this device"
    if state.state == DeviceSettingState.State.APPLIED:
        return State.DONE, ""
    if state.state == DeviceSettingState.State.FAILED:
        return State.FAILED, state.failure
    return None


def _counts(item, fail_on):
    if item.kind == Item.MSI and item.app_install is not None and not item.app_install.failure_counts:
        return False  # given up after stalling, and the profile lets the page go on without it
    return fail_on == "any" or item.kind in (Item.MSI, Item.MODERN)


def _finish(link, phase, state, note, now):
    link.finish(state, note, now, phase)
    _queue_finish(link, phase)
    logger.info("autopilot: %s setup of device %s %s: %s", phase, link.device_id, state, note)
    AuditEvent.record(None, "autopilot.setup_finished", link.device,
                      detail={"phase": phase, "state": state, "note": note})


def _queue_finish(link, phase):
    """ServerHasFinishedProvisioning, the outcome, then IsSyncDone, in the phase's scope (dmclient-csp: the
    server forces the success or failure screen by setting WasDeviceSuccessfullyProvisioned, then
    IsSyncDone)."""
    device = link.device
    succeeded = link.phase_state(phase) == EspState.SUCCEEDED
    _queue(device, first_sync("ServerHasFinishedProvisioning", phase), "bool", "true", SOURCE_FINISH)
    _queue(device, first_sync("WasDeviceSuccessfullyProvisioned", phase), "int", "1" if succeeded else "0",
           SOURCE_FINISH)
    field = link.phase_field(phase, "sync_done_command")
    setattr(link, field, _queue(device, first_sync("IsSyncDone", phase), "bool", "true", SOURCE_FINISH))
    link.save(update_fields=[field])


def _resend_finish_if_lost(link, phase, now):
    """The page is over on our side: note the device's answer to IsSyncDone, or queue the end again
    when the commands were never answered (expired, cancelled, sent too often) or refused in the user
    scope because the user's MDM context did not exist yet (405)."""
    command = getattr(link, link.phase_field(phase, "sync_done_command"))
    if command is not None and command.is_pending:
        return
    if commands.user_context_missing(command):
        _release_refused(link, phase, now)
        return
    if command is not None and command.status_code is not None:
        link.acknowledge(command.completed_at or now, phase)
        _skip_later_users(link, phase)
        return
    logger.warning("autopilot: device %s never answered the end of its %s setup page; queued again",
                   link.device_id, phase)
    _queue_finish(link, phase)


def _release_refused(link, phase, now):
    """The device answered the release with 405 in the user scope: "not yet", the user's MDM context does
    not exist yet. Sent again at each session for as long as the page's time-out from the page's end
    (the device may show the page until then); past that, given up, and the page is over."""
    finished = getattr(link, link.phase_field(phase, "finished_at")) or now
    if now < finished + timedelta(minutes=link.esp_timeout_minutes):
        logger.info("autopilot: device %s has no user context yet (405): the end of its %s setup page is sent again",
                    link.device_id, phase)
        _queue_finish(link, phase)
        return
    note = (f"The device refused the end of the page with Status 405 (no user context) for "
            f"{link.esp_timeout_minutes} minutes; {getattr(link, link.phase_field(phase, 'note'))}")
    link.release_refused(note, now, phase)
    logger.warning("autopilot: device %s never took the end of its %s setup page; given up", link.device_id, phase)
    AuditEvent.record(None, "autopilot.release_given_up", link.device,
                      detail={"phase": phase, "state": link.phase_state(phase), "note": note[:255]})
    _skip_later_users(link, phase)


def _skip_later_users(link, phase):
    """Once the account-setup page was released, the people who sign in to the device after this one
    skip it (DMClient FirstSyncStatus/SkipUserStatusPage, device only): the server releases it for the
    first user only, so theirs would otherwise wait for a release that never comes, until its time-out."""
    if phase != Phase.USER or link.skip_user_page_command_id is not None:
        return
    try:
        link.skip_user_page_command = _queue(link.device, first_sync("SkipUserStatusPage"), "bool", "true", SOURCE_ESP)
    except commands.CommandError as error:
        logger.warning("autopilot: cannot tell device %s to skip later users' setup page: %s", link.device_id, error)
        return
    link.save(update_fields=["skip_user_page_command"])


def finish_overdue(now=None):
    """End the status pages (either phase) whose time-out passed while their device was silent. Returns
    how many."""
    now = now or timezone.now()
    count = 0
    for phase in (Phase.DEVICE, Phase.USER):
        tracking = {AutopilotEnrollment.phase_field(phase, "state"): EspState.TRACKING}
        overdue = AutopilotEnrollment.objects.filter(
            **tracking, **{AutopilotEnrollment.phase_field(phase, "deadline") + "__lte": now}).values_list("pk", flat=True)
        for pk in overdue:
            with transaction.atomic():
                link = (AutopilotEnrollment.objects.select_for_update().select_related("device")
                        .filter(pk=pk, **tracking).first())
                if link is not None and _end_overdue(link, phase, now):
                    count += 1
    return count


def _end_overdue(link, phase, now):
    """True when the page's end was queued for the device."""
    if link.device.status != link.device.Status.ENROLLED:
        # Nothing can reach it any more: close the page on our side only.
        link.finish(EspState.TIMED_OUT, "The device left management during setup", now, phase)
        link.acknowledge(now, phase)
        return False
    essential_apps.poll(link.device, now)
    return evaluate(link, now, phase) != EspState.TRACKING


def sweep_stalled_installs(now=None):
    """Mark the MSI installs that made no progress by their stall time, device talking or not: each is sent
    again or given up (essential_apps.check_stalled), and a status page given up on is settled at once, so
    that its end waits for the device's next contact rather than its time-out. Returns how many."""
    now = now or timezone.now()
    due = (AppInstall.objects.filter(kind=EssentialApp.Kind.MSI, stalls_at__lte=now,
                                     state__in=[AppInstall.State.INSTALLING, AppInstall.State.STALLED])
           .values_list("pk", "device_id"))
    count = 0
    for pk, device_id in due:
        with transaction.atomic():
            # Locked in a session's order (management/omadm.py, then checked_in): the device, its
            # enrollment, the install; a session of the device waits, or is waited for.
            device = Device.objects.select_for_update().get(pk=device_id)
            link = AutopilotEnrollment.objects.select_for_update().filter(device=device).first()
            install = AppInstall.objects.select_for_update(of=("self",)).select_related("app").filter(pk=pk).first()
            if install is None:
                continue
            install.device = device
            if not essential_apps.check_stalled(install, now):
                continue
            count += 1
            if (install.state == AppInstall.State.FAILED and link is not None and link.esp_state == EspState.TRACKING
                    and link.esp_started_at is not None and device.status == Device.Status.ENROLLED):
                link.device = device
                evaluate(link, now, Phase.DEVICE)
    return count
