"""Installing a profile's essential apps on a device and following each install.

MSI apps go through the EnterpriseDesktopAppManagement CSP (enterprisedesktopappmanagement-csp), in the
device scope: `Add ./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/{ProductID}/DownloadInstall`,
then an `Exec` of that node whose data is an MsiInstallJob document (content URL, SHA-256 file hash,
msiexec options), Format xml, Type text/plain. The ProductID is the product code with its braces escaped
(%7B…%7D). Windows downloads, checks the hash and runs msiexec in the background, so the Exec's 2xx
means "started"; the outcome is the `…/MSI/{ProductID}/Status` node: 70 enforcement completed, 60
enforcement failed, 30 download failed (10-55: still on its way), with `…/LastError` as an HRESULT.

Store apps go through the EnterpriseModernAppManagement CSP in the **user** scope. Sources, in
MicrosoftDocs/windows-itpro-docs: windows/client-management/enterprise-app-management.md ("Deploy apps
to user from the Store") and windows/client-management/mdm/enterprisemodernappmanagement-csp.md. The CSP
reference lists AppInstallation/{PackageFamilyName}/StoreInstall under both scopes, but the
app-management article supports an install from the Store in the user context only, for a user signed
in with their Entra identity, so every Store command here targets ./User/:
`Add ./User/Vendor/MSFT/EnterpriseModernAppManagement/AppInstallation/{PackageFamilyName}`, then
`Exec …/{PackageFamilyName}/StoreInstall` with `<Application id="{Store product id}" flags="…"
skuid="…"/>`, and Gets of its `Status` and `LastError`. `skuid` is required and is the app's own (the
Store SKU of the EssentialApp, "0016" unless the administrator gives another); `flags` 0 leaves the
user's seat to the organisation's Store licensing, 1 lets Windows claim one when free
(EssentialApp.store_claim_seat). `Status` reads 0 not installed, 1 installing, 2 failed, 3 installed,
and the node is removed once the install succeeded: a 404 for it after a successful Exec means installed.

The management endpoint holds every ./User/ command until the device reports a signed-in user
(management/omadm.py, USER_SCOPE and the 1224 LoginStatus alert), so a Store app reaches a user-driven
or pre-provisioned device in the Enrollment Status Page's account-setup phase. A self-deploying profile
(HoloLens 2 profiles are always self-deploying) never has a user during setup: the profile and its
apps refuse Store apps there (autopilot/models.py STORE_NEEDS_USER), and `queue_install` fails such an
app at once rather than leaving it queued forever for a profile saved before that rule.

Until the signed-in user's MDM context exists (the account setup of OOBE), Windows answers 405 to
./User/ commands: a Store install refused so is not failed but sent again at the next session (at most
MAX_POLLS times, `polls` counting those sessions too); the status page's time-out bounds how long the
page waits for it (autopilot/status_page.py).

`poll` runs at each check-in (autopilot/status_page.py): it closes installs whose Exec failed, and for
the others reads the Status node once per session until it is final.

An MSI install can park on the device (Status stuck at 20 or 50, or a device gone quiet). Progress is a new
Status value or a change of state; with none for the profile's app_stall_minutes, `check_stalled` (at a
check-in, and from the sweep in autopilot/status_page.py for silent devices) marks the install stalled and
sends it again up to the profile's app_retry_count, then fails it: the status page counts that failure as
the profile's app_stall_blocks says.
"""
import logging
from urllib.parse import quote

from django.utils import timezone
from lxml import etree
from lxml.builder import E

from management import commands
from management.models import DeviceCommand

from .models import STORE_NEEDS_USER, AppInstall, EssentialApp

logger = logging.getLogger(__name__)

MSI_ROOT = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/"
MODERN_ROOT = "./User/Vendor/MSFT/EnterpriseModernAppManagement/AppInstallation/"
SOURCE = "autopilot:app"
# MsiInstallJob Enforcement: minutes before msiexec counts as hung, retries and minutes between them.
MSI_TIMEOUT, MSI_RETRIES, MSI_RETRY_INTERVAL = 10, 3, 5
MSI_INSTALLED, MSI_FAILED = "70", {"30": "download failed", "60": "installation failed"}
MODERN_FAILED, MODERN_INSTALLED = "2", "3"
NOT_FOUND = 404
# Reads of the Status node before an install that never settles is given up (one per check-in).
MAX_POLLS = 100


def msi_node(product_code):
    """`…/MSI/%7B…%7D`: the product code's braces are reserved characters in a LocURI."""
    return MSI_ROOT + quote(product_code.upper(), safe="")


def modern_node(family_name):
    return MODERN_ROOT + quote(family_name, safe="")


def install_job(app):
    """The MsiInstallJob document the DownloadInstall Exec carries."""
    job = E.MsiInstallJob(
        E.Product(
            E.Download(E.ContentURLList(E.ContentURL(app.msi_url))),
            E.Validation(E.FileHash(app.sha256.upper())),
            E.Enforcement(
                E.CommandLine(app.command_line or "/quiet"),
                E.TimeOut(str(MSI_TIMEOUT)),
                E.RetryCount(str(MSI_RETRIES)),
                E.RetryInterval(str(MSI_RETRY_INTERVAL)),
            ),
            Version=app.version or "1.0.0",
        ),
        id=app.product_code.upper(),
    )
    return etree.tostring(job, encoding="unicode")


def store_install(app):
    """StoreInstall's data: the product id, whether Windows may claim a seat itself, the app's SKU."""
    application = E.Application(id=app.store_id, flags="1" if app.store_claim_seat else "0", skuid=app.store_sku)
    return etree.tostring(application, encoding="unicode")


def identifier(app):
    return app.product_code.upper() if app.kind == EssentialApp.Kind.MSI else app.package_family_name


def status_node(install):
    if install.kind == EssentialApp.Kind.MSI:
        return msi_node(install.identifier) + "/Status"
    return modern_node(install.identifier) + "/Status"


def error_node(install):
    if install.kind == EssentialApp.Kind.MSI:
        return msi_node(install.identifier) + "/LastError"
    return modern_node(install.identifier) + "/LastError"


def queue_install(device, app, *, actor=None):
    """Queue `app` for `device` (Add, then the install Exec) and return its AppInstall. An app already
    queued or installed on the device is not queued again. Raises commands.CommandError."""
    profile = app.profile
    install, created = AppInstall.objects.get_or_create(
        device=device, kind=app.kind, identifier=identifier(app),
        defaults={"app": app, "name": app.name[:200], "stall_minutes": profile.app_stall_minutes,
                  "retry_count": profile.app_retry_count, "stall_blocks": profile.app_stall_blocks})
    if not created:
        return install
    if app.kind == EssentialApp.Kind.STORE and app.profile.is_self_deploying:
        # A profile saved before Store apps were refused there: nobody would ever sign in to take it.
        install.advance(AppInstall.State.FAILED, timezone.now(), error=STORE_NEEDS_USER)
        return install
    if app.kind == EssentialApp.Kind.MSI:
        install.install_command = _queue_msi_install(device, app, actor=actor)
        install.progressed(timezone.now())  # its stall clock starts
    else:
        node = modern_node(app.package_family_name)
        commands.queue(device, DeviceCommand.Verb.ADD, node, actor=actor, source=SOURCE)
        install.install_command = commands.queue(device, DeviceCommand.Verb.EXEC, node + "/StoreInstall", format="xml",
                                                 data=store_install(app), actor=actor, source=SOURCE)
    install.save(update_fields=["install_command", "progress_at", "stalls_at"])
    return install


def _queue_msi_install(device, app, *, actor=None):
    """Add, then Exec, of the app's DownloadInstall (the CSP wants the Add first); returns the Exec."""
    node = msi_node(app.product_code) + "/DownloadInstall"
    commands.queue(device, DeviceCommand.Verb.ADD, node, actor=actor, source=SOURCE)
    return commands.queue(device, DeviceCommand.Verb.EXEC, node, format="xml", type="text/plain",
                          data=install_job(app), actor=actor, source=SOURCE)


def poll(device, now=None):
    """At a check-in: settle the device's open installs from what it answered, and read the Status node
    of those still installing. Returns the installs that changed state."""
    now = now or timezone.now()
    open_installs = (AppInstall.objects.filter(device=device, state__in=AppInstall.OPEN)
                     .select_related("install_command", "status_command", "error_command"))
    changed = []
    for install in open_installs:
        install.device = device
        before = install.state
        _observe(install, now)
        if install.state == AppInstall.State.INSTALLING:
            _read_status(install, now)
        check_stalled(install, now)
        if install.state != before:
            changed.append(install)
    return changed


def _observe(install, now):
    command = install.install_command
    if install.state in (AppInstall.State.QUEUED, AppInstall.State.STALLED):
        if command is None:
            install.advance(AppInstall.State.FAILED, now, error="The install command was deleted")
        elif command.status == DeviceCommand.Status.SUCCEEDED:
            install.advance(AppInstall.State.INSTALLING, now)
        elif commands.user_context_missing(command):
            _send_again(install, command, now)
        elif command.status in DeviceCommand.FINAL:
            install.advance(AppInstall.State.FAILED, now, error=_why(command))
        return
    status = install.status_command
    if status is None or status.is_pending:
        return
    verdict = _verdict(install, status, now)
    if verdict is None:
        return
    state, error = verdict
    install.advance(state, now, error=error)


def _send_again(install, command, now):
    """The Store install was refused with 405 in the user scope: the signed-in user's MDM context did not
    exist yet (account setup in OOBE). Not a failure: the Add and the StoreInstall go out again in this
    session, and so at each session until the device takes them, at most MAX_POLLS times."""
    if install.polls >= MAX_POLLS:
        install.advance(AppInstall.State.FAILED, now,
                        error=f"Refused with Status 405 at {MAX_POLLS} check-ins: the user's MDM context never appeared")
        return
    try:
        commands.queue(install.device, DeviceCommand.Verb.ADD, modern_node(install.identifier), source=SOURCE)
        install.install_command = commands.resend(install.device, command)
    except commands.CommandError as error:
        logger.warning("autopilot: cannot send the install of %s again: %s", install, error)
        return
    logger.info("autopilot: %s waits for the user's MDM context (Status 405); sent again", install)
    install.polls += 1
    install.updated_at = now
    install.save(update_fields=["install_command", "polls", "updated_at"])


def _verdict(install, status, now=None):
    """(final state, error) from an answered Get of the Status node, or None while installing."""
    value = status.result_data.strip() if status.status == DeviceCommand.Status.SUCCEEDED else ""
    if value and value != install.reported_status:
        install.reported_status = value[:32]
        install.progressed(now or timezone.now())  # a new Status is progress (10 → 20 → 40 → 50 → 70)
        install.save(update_fields=["reported_status", "progress_at", "stalls_at"])
    last_error = _last_error(install)
    if install.kind == EssentialApp.Kind.MSI:
        if value == MSI_INSTALLED:
            return AppInstall.State.INSTALLED, ""
        if value in MSI_FAILED:
            return AppInstall.State.FAILED, f"{MSI_FAILED[value].capitalize()} (Status {value}){last_error}"
        return None
    if value == MODERN_INSTALLED or (status.status == DeviceCommand.Status.FAILED and status.status_code == NOT_FOUND):
        # Windows removes the AppInstallation node once the app is installed.
        return AppInstall.State.INSTALLED, ""
    if value == MODERN_FAILED:
        return AppInstall.State.FAILED, f"Installation failed (Status {value}){last_error}"
    return None


def _last_error(install):
    command = install.error_command
    if command is None or command.status != DeviceCommand.Status.SUCCEEDED:
        return ""
    value = command.result_data.strip()
    if not value or value == "0":
        return ""
    if value.lstrip("-").isdigit():
        value = f"0x{int(value) & 0xFFFFFFFF:08X}"  # an HRESULT reads in hexadecimal
    return f", last error {value}"


def _read_status(install, now):
    if install.status_command is not None and install.status_command.is_pending:
        return  # asked already; its answer comes in this session or the next
    if install.polls >= MAX_POLLS:
        install.advance(AppInstall.State.FAILED, now,
                        error=f"No final status after {MAX_POLLS} reads (last: {install.reported_status or 'none'})")
        return
    try:
        install.status_command = commands.queue(install.device, DeviceCommand.Verb.GET, status_node(install),
                                                source=SOURCE)
        install.error_command = commands.queue(install.device, DeviceCommand.Verb.GET, error_node(install),
                                               source=SOURCE)
    except commands.CommandError as error:
        logger.warning("autopilot: cannot read the install status of %s: %s", install, error)
        return
    install.polls += 1
    install.updated_at = now
    install.save(update_fields=["status_command", "error_command", "polls", "updated_at"])


def check_stalled(install, now):
    """An MSI install that made no progress by its `stalls_at` (its Status unchanged, or the device gone
    quiet) is stalled: sent again (Add, then Exec of DownloadInstall, as at first) while the profile's retries
    last, else failed. A resend the device never fetched is withdrawn first, so that a device coming back
    gets one install, not a pile. Returns True when the install was found stalled."""
    if (install.kind != EssentialApp.Kind.MSI or install.stalls_at is None or now < install.stalls_at
            or install.state not in (AppInstall.State.INSTALLING, AppInstall.State.STALLED)):
        return False
    _withdraw_resend(install, now)
    waited = f"No progress for {install.stall_minutes} minutes (last Status {install.reported_status or 'none'})"
    install.stalled_at = now
    install.save(update_fields=["stalled_at"])
    if install.attempts > install.retry_count:
        _give_up(install, now, f"Stalled: {waited[0].lower()}{waited[1:]} after {install.attempts} attempts")
        return True
    if install.app is None:
        _give_up(install, now, f"Stalled: {waited[0].lower()}{waited[1:]}; its app was removed from the profile")
        return True
    try:
        command = _queue_msi_install(install.device, install.app)
    except commands.CommandError as error:
        _give_up(install, now, f"Stalled, and cannot be sent again: {error}")
        return True
    install.install_command, install.status_command, install.error_command = command, None, None
    install.attempts += 1
    install.save(update_fields=["install_command", "status_command", "error_command", "attempts"])
    install.advance(AppInstall.State.STALLED, now,
                    error=f"{waited}: sent again (attempt {install.attempts} of {install.retry_count + 1})")
    logger.warning("autopilot: MSI install %s stalled; sent again (attempt %s)", install.pk, install.attempts)
    return True


def _give_up(install, now, error):
    install.advance(AppInstall.State.FAILED, now, error=error)
    logger.warning("autopilot: MSI install %s given up: %s", install.pk, error)


def _withdraw_resend(install, now):
    # A conditional update: a session taking the commands at this moment has them locked and marks them
    # sent, and then they no longer match.
    node = msi_node(install.identifier) + "/DownloadInstall"
    DeviceCommand.objects.filter(device_id=install.device_id, source=SOURCE, target=node,
                                 status=DeviceCommand.Status.QUEUED).update(
        status=DeviceCommand.Status.CANCELLED, completed_at=now, note="Withdrawn: the install stalled")


def _why(command):
    if command.status_code is not None:
        return f"The device refused the install (Status {command.status_code})"
    return command.note or f"The install command {command.get_status_display().lower()}"
