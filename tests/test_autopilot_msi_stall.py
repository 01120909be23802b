"""End to end over a live server: an MSI install that parks on the device (EnterpriseDesktopAppManagement
Status stays at 50, enforcement in progress, and the device may stop checking in) is marked stalled by the
periodic sweep once the profile's stall time passed without progress, sent again up to the profile's retry
count, and then counted by the Enrollment Status Page as the profile says (blocking or not). The simulator's
`msi_stall` switch (`simulate_device --stall-msi`) makes the device behave so. Time is moved by setting the
install's last progress back, never by waiting."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from autopilot import tasks
from autopilot.models import AppInstall, AutopilotEnrollment
from simulator import cli as simulator_cli
from enrollment.models import Device
from management.models import DeviceCommand
from simulator import Simulator
from tests.api_helpers import client_with_token, make_token
from tests.factories import PASSWORD, AdminFactory
from tests.factories_autopilot import AutopilotDeviceFactory, EssentialAppFactory, ProfileFactory
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures: a live server and its user)

PRODUCT = "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}"
MSI_NODE = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/%7B9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D%7D"
ESP = "./Device/Vendor/MSFT/DMClient/Provider/mdmportal/FirstSyncStatus/"
FINISH = ["ServerHasFinishedProvisioning", "WasDeviceSuccessfullyProvisioned", "IsSyncDone"]


def finish_of(session):
    return {target[len(ESP):]: data for _, _, target, _, data in session.commands
            if target.startswith(ESP) and target[len(ESP):] in FINISH}


def installs_sent(session):
    return [verb for verb, _, target, _, _ in session.commands if target == MSI_NODE + "/DownloadInstall"]


def stall_profile(**fields):
    profile = ProfileFactory(name="Sales", esp_allow_retry=True, **{"app_stall_minutes": 20, "app_retry_count": 1,
                                                                    **fields})
    EssentialAppFactory(profile=profile, name="Agent", product_code=PRODUCT)
    AutopilotDeviceFactory(serial_number="PF-STALL-1", profile=profile)
    return profile


def stalling_device(server, stall):
    simulator = Simulator(server.url, "carol@example.com", PASSWORD, msi_stall=stall,
                          serial_number="PF-STALL-1")
    result = simulator.run()
    return simulator, result, Device.objects.get(device_id=result.device_id)


def until_parked(simulator, result, device):
    """Check in until the install runs and its Status was read at least twice with the same value."""
    for _ in range(3):
        simulator.checkin(result)
    install = AppInstall.objects.get(device=device)
    assert (install.state, install.reported_status) == ("installing", "50")
    return install


def no_progress_for(install, minutes):
    """What the sweep sees once `minutes` passed since the install's last progress."""
    past = timezone.now() - timedelta(minutes=minutes)
    stalls_at = past + timedelta(minutes=install.stall_minutes) if install.stalls_at else None
    AppInstall.objects.filter(pk=install.pk).update(progress_at=past, stalls_at=stalls_at)


@pytest.fixture
def api(transactional_db):
    return client_with_token(make_token(AdminFactory(email="root@example.com")))


def test_a_stalled_msi_install_is_marked_sent_again_and_completes(enrollment_server, carol, api, client):
    stall_profile()
    simulator, result, device = stalling_device(enrollment_server, "once")
    install = until_parked(simulator, result, device)

    no_progress_for(install, 19)
    assert tasks.sweep_stalled_installs() == 0  # not yet past the profile's 20 minutes
    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1
    assert tasks.sweep_stalled_installs() == 0  # marked once, sent again once
    install.refresh_from_db()
    assert (install.state, install.attempts) == ("stalled", 2) and install.stalled_at is not None
    assert "No progress for 20 minutes" in install.last_error
    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "tracking"

    # Visible: the API (install and enrollment), the console's enrollments list, device page, dashboard.
    app = api.get(f"/api/v1/autopilot/app-installs/?device={device.pk}&stalled=true").json()["results"][0]
    assert (app["state"], app["attempts"], app["stalled"]) == ("stalled", 2, True)
    provisioning = api.get(f"/api/v1/autopilot/provisioning/?stalled=true").json()["results"]
    assert [(row["device"], row["stalled_apps"]) for row in provisioning] == [(device.pk, 1)]
    client.force_login(AdminFactory(email="console@example.com"))
    listing = client.get("/admin/autopilot/autopilotenrollment/?stalled=yes").content.decode()
    assert device.name in listing and "1 stalled" in listing
    assert device.name not in client.get("/admin/autopilot/autopilotenrollment/?stalled=no").content.decode()
    assert "Stalled" in client.get(f"/admin/enrollment/device/{device.pk}/change/").content.decode()
    dashboard = client.get("/admin/")
    assert '<div class="console-card" id="card-stalled-apps">' in dashboard.content.decode()
    assert {card["id"]: card["figure"] for card in dashboard.context["cards"]}["card-stalled-apps"] == 1

    # The device gets the install again; this time it completes and the page ends well.
    again = simulator.checkin(result)
    assert installs_sent(again) == ["Add", "Exec"]
    for _ in range(3):
        session = simulator.checkin(result)
        if finish_of(session):
            break
    assert finish_of(session)["WasDeviceSuccessfullyProvisioned"] == "1"
    install.refresh_from_db()
    assert (install.state, install.reported_status, install.attempts) == ("installed", "70", 2)
    assert AutopilotEnrollment.objects.get(device=device).esp_state == "succeeded"


def test_an_install_that_always_stalls_fails_a_blocking_page_after_its_retries(enrollment_server, carol):
    stall_profile()
    simulator, result, device = stalling_device(enrollment_server, "always")
    install = until_parked(simulator, result, device)
    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1
    assert installs_sent(simulator.checkin(result)) == ["Add", "Exec"]
    install = until_parked(simulator, result, device)
    assert install.attempts == 2

    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1  # retries used up: failed, and the page with it
    install.refresh_from_db()
    assert install.state == "failed" and install.stalled_at is not None
    assert "after 2 attempts" in install.last_error
    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "failed" and "Agent" in link.esp_note
    assert finish_of(simulator.checkin(result))["WasDeviceSuccessfullyProvisioned"] == "0"


def test_an_install_that_always_stalls_releases_a_non_blocking_page(enrollment_server, carol):
    stall_profile(app_stall_blocks=False)
    simulator, result, device = stalling_device(enrollment_server, "always")
    install = until_parked(simulator, result, device)
    no_progress_for(install, 21)
    tasks.sweep_stalled_installs()
    simulator.checkin(result)
    install = until_parked(simulator, result, device)
    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1

    link = AutopilotEnrollment.objects.get(device=device)
    assert link.esp_state == "succeeded" and "not counted" in link.esp_note
    assert link.items.get(kind="msi").state == "failed"
    assert finish_of(simulator.checkin(result))["WasDeviceSuccessfullyProvisioned"] == "1"


def test_a_device_that_went_quiet_has_its_stalled_install_given_up_by_the_sweep(enrollment_server, carol):
    stall_profile()
    simulator, result, device = stalling_device(enrollment_server, "always")
    install = until_parked(simulator, result, device)
    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1  # sent again, but the device never comes for it
    install.refresh_from_db()
    first_retry = install.install_command
    no_progress_for(install, 21)
    assert tasks.sweep_stalled_installs() == 1
    install.refresh_from_db()
    assert install.state == "failed"
    first_retry.refresh_from_db()
    assert first_retry.status == DeviceCommand.Status.CANCELLED  # never delivered: withdrawn, not left behind
    assert AutopilotEnrollment.objects.get(device=device).esp_state == "failed"
    # At its next contact the device is told the page is over, and gets no stale install.
    session = simulator.checkin(result)
    assert finish_of(session)["WasDeviceSuccessfullyProvisioned"] == "0" and installs_sent(session) == []


def test_a_profile_without_a_stall_time_never_marks_installs_stalled(enrollment_server, carol):
    stall_profile(app_stall_minutes=0)
    simulator, result, device = stalling_device(enrollment_server, "always")
    install = until_parked(simulator, result, device)
    assert (install.stall_minutes, install.stalls_at) == (0, None)
    no_progress_for(install, 24 * 60)
    assert tasks.sweep_stalled_installs() == 0
    assert AppInstall.objects.get(pk=install.pk).state == "installing"


def test_the_simulate_device_command_has_the_stall_switch(enrollment_server, carol, monkeypatch, capsys):
    made = []

    class Recording(Simulator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(simulator_cli, "Simulator", Recording)
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--checkin", "--stall-msi")
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--stall-msi", "always")
    assert [simulator.msi_stall for simulator in made] == ["once", "always"]
    assert "Session ended" in capsys.readouterr().out


def test_the_sweep_runs_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-stalled-app-installs"]
    assert (entry["task"], entry["schedule"]) == (tasks.sweep_stalled_installs.name, 60.0)
