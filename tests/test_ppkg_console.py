"""The console pages of PIN enrollments: create (PIN shown once), list, detail with devices and
alerts, regenerate, revoke, unlock and the WCD project download; each for the three roles."""
import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from enrollment.models import PinEnrollment
from tests.console_fixtures import messages_of
from tests.factories_enrollment import (PPKG_PIN, ConfigurationGroupFactory, DeviceFactory, PinEnrollmentFactory,
                                        PinEnrollmentFailureFactory)

pytestmark = pytest.mark.django_db

LIST = "/admin/enrollment/pinenrollment/"
ADD = LIST + "add/"


def url(pin_enrollment, view="change"):
    return f"{LIST}{pin_enrollment.pk}/{view}/"


def new_enrollment(owner, groups=(), **fields):
    expires = timezone.localtime() + timedelta(days=30)
    return {"name": "Lab PCs", "upn": "", "owner": owner.pk, "configuration_groups": [g.pk for g in groups],
            "expires_at_0": expires.strftime("%Y-%m-%d"), "expires_at_1": expires.strftime("%H:%M:%S"),
            "max_devices": "40", "_save": "Save", **fields}


def pin_on(page):
    return page.context["pin"]


@pytest.fixture
def owner(alice):
    return alice


@pytest.fixture
def package(owner):
    return PinEnrollmentFactory(name="Kiosks", upn="enroll-kiosks@example.com", owner=owner, max_devices=10)


# Creation: the PIN once, a hash stored

def test_creating_shows_the_pin_once_and_stores_only_its_hash(client, enrollment_admin, owner, organisation):
    lab, kiosks = ConfigurationGroupFactory(name="Lab"), ConfigurationGroupFactory(name="Kiosks")
    client.force_login(enrollment_admin)

    page = client.post(ADD, new_enrollment(owner, groups=[lab, kiosks]))

    assert page.status_code == 200
    pin = pin_on(page)
    html = page.content.decode()
    assert pin in html and "shown only now" in html
    assert "no-store" in page["Cache-Control"]
    pin_enrollment = PinEnrollment.objects.get()
    assert pin_enrollment.upn.startswith("enroll-lab-pcs@")
    assert set(pin_enrollment.configuration_groups.all()) == {lab, kiosks}
    assert pin_enrollment.max_devices == 40 and pin_enrollment.owner == owner
    assert pin_enrollment.created_by == enrollment_admin
    assert pin not in pin_enrollment.pin_hash and pin_enrollment.pin_hash.startswith("md5$")
    assert len(pin.replace("-", "")) == 20
    created = AuditEvent.objects.get(action="pin_enrollment.created", actor=enrollment_admin)
    assert sorted(created.detail["configuration_groups"]) == ["Kiosks", "Lab"]
    assert pin not in str(list(AuditEvent.objects.values_list("detail", flat=True)))

    detail = client.get(url(pin_enrollment)).content.decode()
    assert pin not in detail


def test_upn_defaults_to_enroll_name_at_the_organisations_domain(client, enrollment_admin, owner, organisation):
    organisation.enrollment_base_url = "https://enterpriseenrollment.contoso.com"
    organisation.save()
    client.force_login(enrollment_admin)
    client.post(ADD, new_enrollment(owner, name="Building A / Floor 2"))
    assert PinEnrollment.objects.get().upn == "enroll-building-a-floor-2@contoso.com"


@pytest.mark.parametrize("upn, error", [
    ("alice@example.com", "email or MDM username: choose a name of its own"),
    ("ENROLL-KIOSKS@example.com", "Another provisioning package already uses"),
    ("not an address", "valid email"),
])
def test_creating_refuses_a_upn_that_names_something_else(client, enrollment_admin, owner, package, upn, error):
    client.force_login(enrollment_admin)
    page = client.post(ADD, new_enrollment(owner, upn=upn))
    assert page.status_code == 200 and error in page.content.decode()
    assert PinEnrollment.objects.count() == 1


def test_creating_refuses_a_past_expiry_and_no_devices(client, enrollment_admin, owner):
    client.force_login(enrollment_admin)
    page = client.post(ADD, new_enrollment(owner, expires_at_0="2020-01-01", max_devices="0"))
    assert set(page.context["adminform"].form.errors) == {"expires_at", "max_devices"}
    assert not PinEnrollment.objects.exists()


# The WCD project

def test_one_time_page_downloads_the_wcd_project_with_the_pin(client, enrollment_admin, owner, organisation):
    client.force_login(enrollment_admin)
    page = client.post(ADD, new_enrollment(owner))
    pin, pin_enrollment = pin_on(page), PinEnrollment.objects.get()
    download = url(pin_enrollment, "wcd-project")
    assert f'action="{download}"' in page.content.decode()

    response = client.post(download, {"pin": pin})

    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="lab-pcs-wcd-project.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        xml = archive.read("lab-pcs/customizations.xml").decode()
    assert f"<Secret>{pin}</Secret>" in xml
    assert AuditEvent.objects.filter(action="pin_enrollment.project_downloaded").exists()


def test_project_is_refused_for_a_wrong_pin(client, enrollment_admin, package):
    client.force_login(enrollment_admin)
    response = client.post(url(package, "wcd-project"), {"pin": "WRONG"}, follow=True)
    assert response["Content-Type"].startswith("text/html")
    assert "not this provisioning package's current PIN" in " ".join(messages_of(response))


def test_project_can_be_rebuilt_later_by_typing_the_pin(client, enrollment_admin, package):
    client.force_login(enrollment_admin)
    assert 'id="wcd-project"' in client.get(url(package)).content.decode()
    response = client.post(url(package, "wcd-project"), {"pin": PPKG_PIN})
    assert response["Content-Type"] == "application/zip"


def test_project_of_a_revoked_enrollment_is_refused(client, enrollment_admin, owner):
    package = PinEnrollmentFactory(owner=owner, revoked=True)
    client.force_login(enrollment_admin)
    response = client.post(url(package, "wcd-project"), {"pin": PPKG_PIN}, follow=True)
    assert "revoked or expired" in " ".join(messages_of(response))


# List and detail

def test_list_shows_usage_expiry_and_status(client, helpdesk, owner, package):
    DeviceFactory(user=owner, pin_enrollment=package, method="ppkg")
    DeviceFactory(user=owner, pin_enrollment=package, method="ppkg", replaced=True)
    PinEnrollmentFactory(name="Old lab", owner=owner, revoked=True)
    client.force_login(helpdesk)
    html = client.get(LIST).content.decode()
    assert "Kiosks" in html and "1 / 10" in html and ">active<" in html
    assert "Old lab" in html and ">revoked<" in html


def test_detail_lists_the_enrolled_devices(client, helpdesk, owner, package):
    DeviceFactory(user=owner, pin_enrollment=package, method="ppkg", name="KIOSK-001")
    DeviceFactory(user=owner, name="ALICE-LAPTOP")
    client.force_login(helpdesk)
    html = client.get(url(package)).content.decode()
    assert "KIOSK-001" in html and "ALICE-LAPTOP" not in html
    devices = client.get("/admin/enrollment/device/", {"pin_enrollment__id__exact": package.pk}).content.decode()
    assert "KIOSK-001" in devices and "ALICE-LAPTOP" not in devices


def test_detail_shows_the_lockout_alert(client, helpdesk, owner):
    package = PinEnrollmentFactory(owner=owner, locked=True)
    AuditEvent.record(None, "pin_enrollment.locked", package, ip="203.0.113.9",
                      detail={"seconds": 900, "failures": 10, "lockout": 1})
    client.force_login(helpdesk)
    html = client.get(url(package)).content.decode()
    assert "Locked until" in html and "locked for 900 s after 10 wrong PINs" in html and "203.0.113.9" in html


def test_detail_shows_an_address_locked_out_and_offers_unlock(client, enrollment_admin, owner):
    package = PinEnrollmentFactory(owner=owner)
    PinEnrollmentFailureFactory(pin_enrollment=package, address="198.51.100.7", locked=True)
    AuditEvent.record(None, "pin_enrollment.address_locked", package, ip="198.51.100.7",
                      detail={"scope": "address", "address": "198.51.100.7", "seconds": 900, "failures": 10,
                              "lockout": 1})
    client.force_login(enrollment_admin)
    html = client.get(url(package)).content.decode()
    assert "1 address locked out" in html and "198.51.100.7 locked for 900 s after 10 wrong PINs" in html
    assert ">Unlock<" in html and "Locked until" not in html
    client.post(url(package, "unlock"))
    assert not package.address_failures.exists()


# Regenerate, revoke, unlock

def test_regenerating_shows_a_new_pin_once_and_kills_the_old(client, enrollment_admin, package):
    client.force_login(enrollment_admin)
    assert "stop enrolling" in client.get(url(package, "regenerate")).content.decode()

    page = client.post(url(package, "regenerate"))

    new_pin = pin_on(page)
    assert new_pin != PPKG_PIN and new_pin in page.content.decode()
    package.refresh_from_db()
    assert package.pin_generation == 2
    assert client.post(url(package, "wcd-project"), {"pin": PPKG_PIN})["Content-Type"].startswith("text/html")
    assert client.post(url(package, "wcd-project"), {"pin": new_pin})["Content-Type"] == "application/zip"
    assert AuditEvent.objects.filter(action="pin_enrollment.pin_regenerated").exists()


def test_revoking_after_confirmation(client, enrollment_admin, package):
    client.force_login(enrollment_admin)
    assert client.get(url(package, "revoke")).status_code == 200
    response = client.post(url(package, "revoke"), follow=True)
    package.refresh_from_db()
    assert package.is_revoked and package.status == "revoked"
    assert "is revoked" in " ".join(messages_of(response))
    response = client.post(url(package, "regenerate"), follow=True)
    assert "gets no new PIN" in " ".join(messages_of(response))


def test_unlocking_clears_the_lockout(client, enrollment_admin, owner):
    package = PinEnrollmentFactory(owner=owner, locked=True)
    client.force_login(enrollment_admin)
    assert ">Unlock<" in client.get(url(package)).content.decode()
    client.post(url(package, "unlock"))
    package.refresh_from_db()
    assert not package.is_locked and package.lockouts == 0
    assert AuditEvent.objects.filter(action="pin_enrollment.unlocked").exists()


def test_editing_keeps_the_upn_and_audits(client, enrollment_admin, package, owner):
    kiosks = ConfigurationGroupFactory(name="Kiosks")
    client.force_login(enrollment_admin)
    expires = timezone.localtime(package.expires_at)
    client.post(url(package), {"name": "Kiosks v2", "owner": owner.pk, "configuration_groups": [kiosks.pk],
                               "expires_at_0": expires.strftime("%Y-%m-%d"),
                               "expires_at_1": expires.strftime("%H:%M:%S"),
                               "max_devices": "20", "upn": "hijack@example.com", "_save": "Save"})
    package.refresh_from_db()
    assert (package.name, package.max_devices, package.upn) == ("Kiosks v2", 20, "enroll-kiosks@example.com")
    assert list(package.configuration_groups.all()) == [kiosks]
    assert AuditEvent.objects.get(action="pin_enrollment.changed").detail["fields"]


def test_the_edit_form_shows_the_groups_and_saving_them_unchanged_changes_nothing(client, enrollment_admin, package,
                                                                                  owner):
    lab = ConfigurationGroupFactory(name="Lab")
    ConfigurationGroupFactory(name="Kiosks")
    package.configuration_groups.set([lab])
    client.force_login(enrollment_admin)
    form = client.get(url(package)).context["adminform"].form
    assert list(form.initial["configuration_groups"]) == [lab]
    expires = timezone.localtime(package.expires_at)
    client.post(url(package), {"name": "Kiosks", "owner": owner.pk, "configuration_groups": [lab.pk],
                               "expires_at_0": expires.strftime("%Y-%m-%d"),
                               "expires_at_1": expires.strftime("%H:%M:%S"),
                               "max_devices": "20", "_save": "Save"})
    assert list(package.configuration_groups.all()) == [lab]
    assert AuditEvent.objects.get(action="pin_enrollment.changed").detail["fields"] == ["max_devices"]


def test_helpdesk_reads_the_groups_as_text(client, helpdesk, package):
    package.configuration_groups.set([ConfigurationGroupFactory(name="Lab"), ConfigurationGroupFactory(name="Kiosk")])
    client.force_login(helpdesk)
    html = client.get(url(package)).content.decode()
    assert "Configuration groups: Lab, Kiosk" in html  # the groups' order: priority, then age
    assert 'name="configuration_groups"' not in html


# Roles: anonymous, wrong user, right user

@pytest.mark.parametrize("path", [LIST, ADD])
def test_pages_redirect_anonymous(client, path, db):
    assert client.get(path)["Location"].startswith("/admin/login/")


def test_detail_and_actions_redirect_anonymous(client, package):
    for view in ("change", "regenerate", "revoke", "unlock"):
        assert client.get(url(package, view))["Location"].startswith("/admin/login/")
    assert client.post(url(package, "wcd-project"), {"pin": PPKG_PIN})["Location"].startswith("/admin/login/")


def test_helpdesk_reads_but_cannot_create_or_change(client, helpdesk, package, owner):
    client.force_login(helpdesk)
    assert client.get(LIST).status_code == 200
    detail = client.get(url(package)).content.decode()
    assert "Regenerate PIN" not in detail and 'id="wcd-project"' not in detail
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, new_enrollment(owner)).status_code == 403
    for view in ("regenerate", "revoke", "unlock"):
        assert client.post(url(package, view)).status_code == 403
    assert client.post(url(package, "wcd-project"), {"pin": PPKG_PIN}).status_code == 403
    package.refresh_from_db()
    assert not package.is_revoked and package.pin_generation == 1


def test_staff_without_permissions_is_refused(client, package):
    from tests.factories import UserFactory

    client.force_login(UserFactory(email="staff@example.com", is_staff=True))
    assert client.get(LIST).status_code == 403
    assert client.get(url(package)).status_code == 403


def test_enrollment_and_full_administrators_manage(client, enrollment_admin, full_admin, package):
    for admin in (enrollment_admin, full_admin):
        client.force_login(admin)
        assert client.get(ADD).status_code == 200
        assert "Regenerate PIN" in client.get(url(package)).content.decode()
