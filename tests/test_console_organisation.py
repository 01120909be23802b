from datetime import timedelta

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

    progress = console.get(ROTATIONS).content.decode()
    assert '<progress value="2" max="2">' in progress
    assert "2 of 2 sent" in progress
    assert "finished" in progress
    assert 'http-equiv="refresh"' not in progress


def reissue_emails(rotation, **statuses):
    """Re-issue emails queued for `rotation`, e.g. sent=3, failed=1, queued=2."""
    for status, count in statuses.items():
        for invitation in InvitationFactory.create_batch(count):
            InvitationEmail.objects.create(invitation=invitation, reason=InvitationEmail.Reason.REISSUE,
                                           status=status, queued_at=rotation.started_at + timedelta(seconds=1))


def test_rotation_progress_counts_the_queuing_while_it_lasts(console, organisation):
    rotation = UrlRotationFactory(version=3, total=10, done=4)
    reissue_emails(rotation, sent=1, queued=3)
    html = console.get(ROTATIONS).content.decode()
    assert '<meta http-equiv="refresh" content="3">' in html
    assert '<progress value="1" max="10">' in html
    assert "1 of 10 sent" in html and "4 queued" in html
    assert "preparing the emails" in html


def test_rotation_is_sending_until_its_emails_are_sent_though_every_one_is_queued(console, organisation):
    """Every email queued (done == total) is not the end: the users have not got the URL yet."""
    rotation = UrlRotationFactory(version=3, total=4, done=4, finished_at=timezone.now())
    reissue_emails(rotation, sent=2, failed=1, sending=1)
    html = console.get(ROTATIONS).content.decode()
    assert '<progress value="3" max="4">' in html
    assert "2 of 4 sent" in html and "1 failed" in html and "1 waiting" in html
    assert '<span class="badge badge-progress">sending</span>' in html
    assert "badge-ok\">finished" not in html
    assert '<meta http-equiv="refresh"' in html


def test_rotation_progress_stops_refreshing_once_every_email_is_sent_or_failed(console, organisation):
    rotation = UrlRotationFactory(total=3, done=3, finished_at=timezone.now())
    reissue_emails(rotation, sent=2, failed=1)
    html = console.get(ROTATIONS).content.decode()
    assert '<progress value="3" max="3">' in html
    assert '<span class="badge badge-ok">finished</span>' in html
    assert 'http-equiv="refresh"' not in html


def test_each_rotation_counts_only_its_own_emails(console, organisation, django_assert_max_num_queries):
    older = UrlRotationFactory(version=2, total=2, done=2, finished_at=timezone.now())
    reissue_emails(older, sent=2)
    newer = UrlRotationFactory(version=3, total=1, done=1, finished_at=timezone.now())
    UrlRotation.objects.filter(pk=newer.pk).update(started_at=older.started_at + timedelta(minutes=5))
    newer.refresh_from_db()
    reissue_emails(newer, failed=1)
    [shown_newer, shown_older] = UrlRotation.with_email_counts(UrlRotation.objects.all())
    assert (shown_newer.sent, shown_newer.failed, shown_newer.state) == (0, 1, "finished")
    assert (shown_older.sent, shown_older.failed, shown_older.state) == (2, 0, "finished")
    # The rotations, the starts of those after the first, one aggregate: whatever the number of rotations.
    with django_assert_max_num_queries(3):
        UrlRotation.with_email_counts(UrlRotation.objects.all())


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
