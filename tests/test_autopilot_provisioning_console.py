"""Each Autopilot device's setup in the console (the provisioning list, the device page, the profile
page's install status) and the API, for the anonymous visitor, a portal user and the roles; and the
sweep that hands imports left queued by a dead broker to Celery."""
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from autopilot import imports, tasks
from autopilot.models import AutopilotEnrollment, DeviceImport, ProvisioningItem
from tests.factories_autopilot import (AppInstallFactory, AutopilotEnrollmentFactory, EssentialAppFactory,
                                       ProfileFactory, ProvisioningItemFactory)
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:autopilot_autopilotenrollment_changelist")


@pytest.fixture
def setup():
    """A device half-way through its status page: one setting done, its app failed, one pending."""
    device = DeviceFactory(name="DESKTOP-SALES1")
    app = EssentialAppFactory(name="Sales agent", profile=ProfileFactory(name="Sales"))
    install = AppInstallFactory(device=device, app=app, failed=True)
    link = AutopilotEnrollmentFactory(device=device, profile=app.profile, esp_state="tracking",
                                      esp_started_at=timezone.now(), applied_at=timezone.now())
    ProvisioningItemFactory(enrollment=link, state=ProvisioningItem.State.DONE, completed_at=timezone.now())
    ProvisioningItemFactory(enrollment=link, kind="msi", key=install.identifier, label="Sales agent",
                            app_install=install, state="failed", detail="Installation failed (Status 60)")
    ProvisioningItemFactory(enrollment=link, key="./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera",
                            label="Allow camera")
    return link


def test_provisioning_list_redirects_anonymous(client):
    response = client.get(LIST)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_provisioning_list_is_closed_to_portal_users(client, alice, setup):
    client.force_login(alice)
    response = client.get(LIST)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_helpdesk_follows_each_devices_setup(client, helpdesk, setup):
    client.force_login(helpdesk)
    page = client.get(LIST).content.decode()
    assert "DESKTOP-SALES1" in page and "1 done, 1 failed of 3" in page and "In progress" in page
    detail = client.get(reverse("admin:autopilot_autopilotenrollment_change", args=[setup.pk])).content.decode()
    assert "Installation failed (Status 60)" in detail and "Allow camera" in detail


def test_device_page_shows_setup_progress_and_apps(client, enrollment_admin, setup):
    client.force_login(enrollment_admin)
    page = client.get(reverse("admin:enrollment_device_change", args=[setup.device_id])).content.decode()
    assert "Autopilot setup (Enrollment Status Page)" in page
    assert "1 done, 1 failed of 3" in page
    assert "Sales agent" in page and "0x80070643" in page


def test_profile_page_counts_installs_per_app(client, enrollment_admin, setup):
    AppInstallFactory(app=setup.profile.essential_apps.get(), installed=True)
    client.force_login(enrollment_admin)
    page = client.get(reverse("admin:autopilot_profile_change", args=[setup.profile_id])).content.decode()
    assert "install status" in page.lower()
    row = page[page.index("Sales agent</a>"):]
    assert row.split("</tr>")[0].count("<td>1</td>") == 2  # one installed, one failed


def test_app_install_list_filters_by_state(client, helpdesk, setup):
    AppInstallFactory(installed=True, name="Other app")
    client.force_login(helpdesk)
    page = client.get(reverse("admin:autopilot_appinstall_changelist") + "?state__exact=failed").content.decode()
    assert "Sales agent" in page and "Other app" not in page


def test_api_lists_setups_with_their_counts_and_items(helpdesk_api, setup):
    AutopilotEnrollmentFactory(esp_state=AutopilotEnrollment.EspState.SUCCEEDED)
    body = helpdesk_api.get("/api/v1/autopilot/provisioning/?state=tracking").json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["device"], row["profile_name"], row["expected"], row["done"], row["failed"]) == (
        setup.device_id, "Sales", 3, 1, 1)
    assert [item["state"] for item in row["items"]] == ["done", "failed", "pending"]
    assert row["app_installs"][0]["last_error"] == "0x80070643"
    installs = helpdesk_api.get(f"/api/v1/autopilot/app-installs/?device={setup.device_id}").json()
    assert [install["state"] for install in installs["results"]] == ["failed"]


def test_a_setup_waiting_for_its_user_shows_its_account_setup(client, helpdesk_api, helpdesk):
    link = AutopilotEnrollmentFactory(awaiting_user=True, device=DeviceFactory(name="DESKTOP-STORE1"))
    ProvisioningItemFactory(enrollment=link, store_app=True)
    client.force_login(helpdesk)
    detail = client.get(reverse("admin:autopilot_autopilotenrollment_change", args=[link.pk])).content.decode()
    assert "Account setup (Store apps, once a user signed in)" in detail and "Company Portal" in detail
    body = helpdesk_api.get("/api/v1/autopilot/provisioning/?user_state=tracking").json()
    assert [row["device"] for row in body["results"]] == [link.device_id]
    assert (body["results"][0]["esp_state"], body["results"][0]["user_esp_state"]) == ("succeeded", "tracking")
    assert body["results"][0]["items"][0]["phase"] == "user"
    # Later users are told to skip the account-setup page once it is released, not before.
    assert "Not yet: later users skip the account-setup page once it is released" in detail
    assert body["results"][0]["skip_user_page"] is None


def test_api_refuses_anonymous(client):
    assert client.get("/api/v1/autopilot/provisioning/").status_code in (401, 403)


def test_an_import_left_queued_by_a_dead_broker_is_handed_over_by_the_sweep(enrollment_admin):
    upload = SimpleUploadedFile("devices.csv", b"Device Serial Number,Windows Product ID,Hardware Hash\r\nSN-1,,\r\n")
    with mock.patch.object(tasks.run_import, "delay", autospec=True, side_effect=OSError("broker down")):
        with mock.patch("django.db.transaction.on_commit", side_effect=lambda callback: callback()):
            device_import = imports.create_import(upload, actor=enrollment_admin)
        assert imports.sweep(timezone.now() + timedelta(minutes=5)) == 0  # still down: stays queued
    device_import.refresh_from_db()
    assert (device_import.status, device_import.enqueued_at) == ("queued", None)
    assert imports.sweep() == 0  # too recent: the upload's own hand-off may still come

    assert imports.sweep(timezone.now() + timedelta(minutes=5)) == 1
    device_import.refresh_from_db()
    assert device_import.status == DeviceImport.Status.DONE and device_import.created_count == 1
    assert imports.sweep(timezone.now() + timedelta(days=1)) == 0


def test_a_swept_task_leaves_a_started_import_to_its_worker(enrollment_admin):
    device_import = DeviceImport.objects.create(file_name="x.csv", status=DeviceImport.Status.RUNNING)
    imports.run(device_import.pk, only_if_queued=True)
    device_import.refresh_from_db()
    assert device_import.status == DeviceImport.Status.RUNNING


def test_the_beat_schedule_runs_the_sweeps(settings):
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"autopilot.tasks.sweep_imports", "autopilot.tasks.finish_overdue_setups"} <= tasks_scheduled
