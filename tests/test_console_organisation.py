import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import AuditEvent, Organisation
from invitations.models import InvitationEmail, UrlRotation
from tests.console_fixtures import messages_of
from tests.factories import InvitationFactory, UrlRotationFactory

REGENERATE = "/admin/accounts/organisation/regenerate/"
ROTATIONS = "/admin/accounts/organisation/rotations/"


def change_url(organisation):
    return f"/admin/accounts/organisation/{organisation.pk}/change/"


def org_form(**fields):
    return {"name": "Contoso", "enrollment_base_url": "https://enterpriseenrollment.contoso.com",
            "auth_policy": "onpremise", "registration_mode": "password", "pin_length": "8", "pin_lifetime_hours": "168",
            "pin_renewal_allowed": "on", "_save": "Save", **fields}


def test_organisation_page_redirects_anonymous(client, organisation):
    assert client.get(change_url(organisation))["Location"].startswith("/admin/login/")


def test_organisation_list_leads_to_the_one_organisation(console, organisation):
    response = console.get("/admin/accounts/organisation/")
    assert response.status_code == 302
    assert response["Location"] == change_url(organisation)


def test_organisation_page_shows_the_current_enrollment_url_and_version(console, organisation):
    response = console.get(change_url(organisation))
    assert response.status_code == 200
    html = response.content.decode()
    assert organisation.enrollment_url in html
    assert f'href="{REGENERATE}"' in html


@pytest.mark.parametrize("typed", ["mdm.contoso.com", "https://MDM.contoso.com/", " mdm.contoso.com "])
def test_organisation_change_normalises_the_host_and_is_audited(console, organisation, typed):
    response = console.post(change_url(organisation), org_form(name="Contoso Ltd", enrollment_base_url=typed),
                            REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 302
    organisation.refresh_from_db()
    assert (organisation.name, organisation.enrollment_base_url) == ("Contoso Ltd", "https://mdm.contoso.com")
    changed = AuditEvent.objects.get(action="organisation.changed")
    assert (changed.ip, changed.actor.email) == ("203.0.113.5", "root@example.com")


@pytest.mark.parametrize("typed", ["http://mdm.contoso.com", "not a host!", "https://mdm.contoso.com/path",
                                   "https://user@mdm.contoso.com"])
def test_organisation_change_rejects_a_bad_host(console, organisation, typed):
    response = console.post(change_url(organisation), org_form(name="Changed", enrollment_base_url=typed))
    assert response.status_code == 200
    assert "enrollment_base_url" in response.context["adminform"].form.errors
    organisation.refresh_from_db()
    assert organisation.name == "Contoso"


def test_regenerate_asks_for_confirmation_first(console, organisation):
    key = organisation.enrollment_key
    response = console.get(REGENERATE)
    assert response.status_code == 200
    assert organisation.enrollment_url.encode() in response.content
    organisation.refresh_from_db()
    assert organisation.enrollment_key == key
    assert not UrlRotation.objects.exists()


def test_regenerate_rotates_the_url_and_reissues_pending_invitations(console, organisation,
                                                                      django_capture_on_commit_callbacks):
    pending = InvitationFactory.create_batch(2)
    InvitationFactory(revoked=True)
    old_url = organisation.enrollment_url

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(REGENERATE, REMOTE_ADDR="203.0.113.6")

    assert response.status_code == 302
    assert response["Location"] == ROTATIONS
    organisation.refresh_from_db()
    assert organisation.enrollment_url != old_url
    assert organisation.enrollment_url_version == 2
    rotation = UrlRotation.objects.get()
    assert (rotation.total, rotation.done, rotation.started_by.email) == (2, 2, "root@example.com")
    assert rotation.finished_at is not None
    assert InvitationEmail.objects.filter(reason=InvitationEmail.Reason.REISSUE).count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(i.user.email for i in pending)
    assert all(organisation.enrollment_url in m.body for m in mail.outbox)
    assert AuditEvent.objects.filter(action="enrollment_url.regenerated", ip="203.0.113.6").count() == 1

    progress = console.get(ROTATIONS)
    assert b"2 / 2" in progress.content
    assert b'http-equiv="refresh"' not in progress.content


def test_rotation_progress_refreshes_itself_while_unfinished(console, organisation):
    UrlRotationFactory(version=3, total=10, done=4)
    response = console.get(ROTATIONS)
    html = response.content.decode()
    assert '<meta http-equiv="refresh" content="3">' in html
    assert '<progress value="4" max="10">' in html
    assert "4 / 10" in html
    assert "in progress" in html


def test_rotation_progress_stops_refreshing_once_finished(console, organisation):
    UrlRotationFactory(total=10, done=10, finished_at=timezone.now())
    assert b'http-equiv="refresh"' not in console.get(ROTATIONS).content


def test_enrollment_admin_sees_the_organisation_but_cannot_change_or_regenerate(client, enrollment_admin,
                                                                                organisation):
    client.force_login(enrollment_admin)
    page = client.get(change_url(organisation))
    assert page.status_code == 200
    assert REGENERATE.encode() not in page.content
    assert b'name="_save"' not in page.content
    assert client.get(ROTATIONS).status_code == 200

    assert client.get(REGENERATE).status_code == 403
    assert client.post(REGENERATE).status_code == 403
    assert client.post(change_url(organisation), org_form(name="Hijacked")).status_code == 403

    organisation.refresh_from_db()
    assert (organisation.name, organisation.enrollment_url_version) == ("Contoso", 1)
    assert not UrlRotation.objects.exists()


def test_helpdesk_cannot_regenerate(client, helpdesk, organisation):
    client.force_login(helpdesk)
    assert client.post(REGENERATE).status_code == 403
    organisation.refresh_from_db()
    assert organisation.enrollment_url_version == 1


def test_full_admin_role_may_regenerate(client, full_admin, organisation, django_capture_on_commit_callbacks):
    client.force_login(full_admin)
    assert REGENERATE.encode() in client.get(change_url(organisation)).content
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(REGENERATE).status_code == 302
    assert Organisation.get().enrollment_url_version == 2


def test_regenerate_redirects_anonymous(client, organisation):
    assert client.post(REGENERATE)["Location"].startswith("/admin/login/")
    organisation.refresh_from_db()
    assert organisation.enrollment_url_version == 1
