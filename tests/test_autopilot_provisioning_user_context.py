"""End to end over a live server, the account-setup (user) phase of the Enrollment Status Page as real
Windows fleets go through it (DMClient CSP, FirstSyncStatus):

- until the signed-in user's MDM context exists, Windows answers 405 to every ./User/ command (the
  simulator's `user_context_after`, `simulate_device --user-context-after`): the Store app and the
  user-scope release (ServerHasFinishedProvisioning, WasDeviceSuccessfullyProvisioned, IsSyncDone) are
  sent again at the next sessions, and nothing is marked failed for it; the release is given up only
  when it was refused for as long as the page's time-out;
- once the account-setup page was released, the next person to sign in for the first time must not
  wait at "Account setup: identifying": the server sets SkipUserStatusPage (the simulator's
  `second_user_at`, `simulate_device --second-user`), and the device page says so."""
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from autopilot.models import AppInstall, AutopilotEnrollment
from enrollment.models import Device
from simulator import Simulator, SimulatorError
from tests.factories import PASSWORD
from tests.factories_autopilot import EssentialAppFactory, ProfileFactory
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: a live server and its user)

ESP = "./Device/Vendor/MSFT/DMClient/Provider/mdmportal/FirstSyncStatus/"
USER_ESP = "./User/Vendor/MSFT/DMClient/Provider/mdmportal/FirstSyncStatus/"
STORE_NODE = "./User/Vendor/MSFT/EnterpriseModernAppManagement/AppInstallation/Microsoft.CompanyPortal_8wekyb3d8bbwe"
STORE_INSTALL = STORE_NODE + "/StoreInstall"
RELEASE = ["ServerHasFinishedProvisioning", "WasDeviceSuccessfullyProvisioned", "IsSyncDone"]


@pytest.fixture
def store_profile(transactional_db):
    """A user-driven profile whose account setup waits for one Store app; a 30-minute time-out."""
    profile = ProfileFactory(name="Sales", esp_timeout_minutes=30)
    EssentialAppFactory(profile=profile, store=True, name="Company Portal")
    return profile


def autopilot_device(server, profile, **options):
    simulator = Simulator(server.url, "carol@example.com", PASSWORD, **options,
                          context_items=[("OfflineAutoPilotEnrollmentCorrelator", str(profile.ztd_correlation_id))])
    result = simulator.run()
    return simulator, result, Device.objects.get(device_id=result.device_id)


def answers(session, target):
    """The device's Status codes to the commands of `target` in one session, in order."""
    return [answer for message in session.messages
            for (_, _, sent_to, _, _), answer in zip(message.commands, message.answers) if sent_to == target]


def release_of(session):
    """{node: (data, the device's answer)} of the user-scope release sent in one session."""
    return {target[len(USER_ESP):]: (data, answer) for message in session.messages
            for (_, _, target, _, data), answer in zip(message.commands, message.answers)
            if target.startswith(USER_ESP) and target[len(USER_ESP):] in RELEASE}


def link_of(device):
    return AutopilotEnrollment.objects.get(device=device)


def test_a_store_app_refused_until_the_users_context_exists_is_sent_again_and_the_page_completes(
        enrollment_server, carol, store_profile):
    simulator, result, device = autopilot_device(enrollment_server, store_profile, user_context_after=2)

    waiting = [simulator.checkin(result) for _ in range(2)]
    # "Not yet": the install goes out again at the next session, nothing failed meanwhile.
    assert [answers(session, STORE_INSTALL) for session in waiting] == [["405"], ["405"]]
    install = AppInstall.objects.get(device=device)
    link = link_of(device)
    assert install.state == "queued" and link.user_esp_state == "tracking"
    assert not link.items.filter(state="failed").exists()

    assert answers(simulator.checkin(result), STORE_INSTALL) == ["200"]  # the context exists now
    simulator.checkin(result)  # the install's Status is read: Windows removed the node, installed
    assert release_of(simulator.checkin(result)) == {
        "ServerHasFinishedProvisioning": ("true", "200"), "WasDeviceSuccessfullyProvisioned": ("1", "200"),
        "IsSyncDone": ("true", "200")}
    simulator.checkin(result)
    link = link_of(device)
    assert (link.user_esp_state, link.user_esp_note) == ("succeeded", "All 1 items done")
    assert link.user_esp_acknowledged_at is not None
    assert AppInstall.objects.get(device=device).state == "installed"
    assert not link.items.filter(state="failed").exists()


def test_the_release_refused_in_the_user_scope_is_sent_again_until_the_device_accepts_it(
        enrollment_server, carol, store_profile):
    simulator, result, device = autopilot_device(enrollment_server, store_profile, user_context_after=4)
    simulator.checkin(result)
    # The account setup's time-out passes while the user's context is still missing.
    AutopilotEnrollment.objects.filter(device=device).update(user_esp_deadline=timezone.now() - timedelta(seconds=1))

    sessions = [simulator.checkin(result) for _ in range(4)]
    assert [release_of(session).get("IsSyncDone") for session in sessions] == [
        ("true", "405"), ("true", "405"), ("true", "405"), ("true", "200")]
    assert [release_of(session)["WasDeviceSuccessfullyProvisioned"][0] for session in sessions] == ["0"] * 4
    link = link_of(device)
    assert link.user_esp_state == "timed_out" and "Company Portal" in link.user_esp_note
    assert link.user_esp_acknowledged_at is None
    simulator.checkin(result)
    link = link_of(device)
    assert link.user_esp_state == "timed_out" and link.user_esp_acknowledged_at is not None
    assert AppInstall.objects.get(device=device).state != "failed"  # never refused for good, only "not yet"


def test_a_release_refused_for_as_long_as_the_pages_time_out_is_given_up(enrollment_server, carol, store_profile):
    simulator, result, device = autopilot_device(enrollment_server, store_profile, user_context_after=100)
    simulator.checkin(result)
    AutopilotEnrollment.objects.filter(device=device).update(user_esp_deadline=timezone.now() - timedelta(seconds=1))
    assert release_of(simulator.checkin(result))["IsSyncDone"] == ("true", "405")
    AutopilotEnrollment.objects.filter(device=device).update(
        user_esp_finished_at=timezone.now() - timedelta(minutes=31))

    assert release_of(simulator.checkin(result)) == {}
    link = link_of(device)
    assert link.user_esp_state == "timed_out" and link.user_esp_acknowledged_at is not None
    assert "405" in link.user_esp_note
    assert AuditEvent.objects.filter(action="autopilot.release_given_up", target_id=str(device.pk)).exists()
    assert release_of(simulator.checkin(result)) == {}


def test_a_succeeded_page_whose_release_never_got_through_is_recorded_as_timed_out(
        enrollment_server, carol, store_profile):
    simulator, result, device = autopilot_device(enrollment_server, store_profile)
    simulator.checkin(result)  # the Store app is taken
    simulator.checkin(result)  # its Status is read: installed
    simulator.user_context_after = simulator.sessions + 100  # the user's context is gone again
    assert release_of(simulator.checkin(result))["IsSyncDone"] == ("true", "405")
    assert link_of(device).user_esp_state == "succeeded"
    AutopilotEnrollment.objects.filter(device=device).update(
        user_esp_finished_at=timezone.now() - timedelta(minutes=31))

    assert release_of(simulator.checkin(result)) == {}
    link = link_of(device)
    # Windows was never told the server had finished: it ended the page as failed at its time-out.
    assert link.user_esp_state == "timed_out" and link.user_esp_acknowledged_at is not None
    assert link.user_esp_note.startswith("The device refused the end of the page with Status 405")
    assert link.skip_user_page_command is not None


def test_after_the_release_later_users_skip_the_account_setup_page(enrollment_server, carol, store_profile,
                                                                   admin_user, client):
    simulator, result, device = autopilot_device(enrollment_server, store_profile)
    for _ in range(4):  # install, Status read, release, release acknowledged
        simulator.checkin(result)
    assert link_of(device).user_esp_acknowledged_at is not None
    simulator.checkin(result)

    simulator.second_user_at = simulator.sessions + 1
    simulator.checkin(result)  # raises SimulatorError("second-user") when the page would be shown
    assert simulator.second_user_page == "skipped"
    assert simulator.nodes[ESP + "SkipUserStatusPage"] == "true"

    client.force_login(admin_user)
    html = client.get(reverse("admin:enrollment_device_change", args=[device.pk]), secure=True).content.decode()
    assert "Later users skip the account-setup page" in html
    assert "SkipUserStatusPage acknowledged" in html


def test_a_second_user_of_a_device_never_told_to_skip_would_wait_at_the_account_setup(
        enrollment_server, carol, store_profile):
    simulator, result, device = autopilot_device(enrollment_server, store_profile, second_user_at=2)
    with pytest.raises(SimulatorError) as raised:
        simulator.checkin(result)
        simulator.checkin(result)  # the account setup is still on: the server has not released it
    assert raised.value.check == "second-user"


def test_the_command_switches_run_the_account_setup_and_a_second_user(enrollment_server, carol, store_profile,
                                                                      capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--context-item", f"OfflineAutoPilotEnrollmentCorrelator={store_profile.ztd_correlation_id}",
                 "--checkin", "--user-context-after", "1", "--second-user", "--json")
    data = json.loads(capsys.readouterr().out)
    assert len(data["checkins"]) == 6  # --user-context-after 1: five sessions, then the second user's
    assert data["second_user"] == {"account_setup_page": "skipped"}
    store = [command["answer"] for session in data["checkins"] for message in session["messages"]
             for command in message["commands"] if command["target"] == STORE_INSTALL]
    assert store == ["405", "200"]
    link = AutopilotEnrollment.objects.get(device__device_id=data["device_id"])
    assert link.user_esp_state == "succeeded"


def test_the_command_refuses_the_switches_without_a_checkin(enrollment_server):
    for switch in (["--user-context-after", "2"], ["--second-user"], ["--sessions", "3"]):
        with pytest.raises(CommandError, match="go with --checkin"):
            call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password",
                         PASSWORD, *switch)
