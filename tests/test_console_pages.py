"""Every console page renders (or is refused) for every role: never a server error."""
import pytest

from tests.factories import AuditEventFactory, InvitationEmailFactory, UrlRotationFactory, UserFactory

PERSONAS = ["admin_user", "full_admin", "enrollment_admin", "helpdesk"]


@pytest.fixture
def pages(organisation, alice):
    email = InvitationEmailFactory(invitation__user=alice, error="SMTPDataError: 554")
    staff = UserFactory(email="staff@example.com", is_staff=True)
    event = AuditEventFactory()
    UrlRotationFactory(total=3, done=1)
    return [
        "/admin/", "/admin/invitations/", "/admin/accounts/user/", "/admin/accounts/user/add/",
        "/admin/accounts/user/import/", f"/admin/accounts/user/{alice.pk}/change/",
        f"/admin/accounts/user/{staff.pk}/change/", f"/admin/accounts/user/{alice.pk}/delete/",
        "/admin/invitations/invitation/", f"/admin/invitations/invitation/{email.invitation.pk}/change/",
        f"/admin/accounts/organisation/{organisation.pk}/change/", "/admin/accounts/organisation/regenerate/",
        "/admin/accounts/organisation/rotations/", "/admin/accounts/auditevent/",
        f"/admin/accounts/auditevent/{event.pk}/change/", "/admin/getting-started/",
    ]


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_console_page_renders_or_is_refused_for_each_role(client, request, persona, pages):
    client.force_login(request.getfixturevalue(persona))
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 302, 403), (url, response.status_code)
