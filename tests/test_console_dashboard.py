from django.utils import timezone

from tests.factories import InvitationFactory, UserFactory
from tests.factories_autopilot import AppInstallFactory
from tests.factories_enrollment import DeviceFactory

DASHBOARD = "/admin/"


def test_dashboard_redirects_anonymous_to_console_sign_in(client, db):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_dashboard_refuses_users_without_console_access(client, alice):
    client.force_login(alice)
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def cards_of(response):
    return {card["id"]: card for card in response.context["cards"]}


def test_dashboard_counts_users_pending_invitations_and_enrolled_devices(console, organisation):
    UserFactory.create_batch(3)
    DeviceFactory()  # its user is the eighth
    DeviceFactory(user=None, replaced=True)
    InvitationFactory.create_batch(2)  # two more users, each with a pending invitation
    InvitationFactory(revoked=True)
    InvitationFactory(expired=True)

    response = console.get(DASHBOARD)

    assert response.status_code == 200
    figures = {card_id: card["figure"] for card_id, card in cards_of(response).items()}
    assert (figures["card-users"], figures["card-pending"], figures["card-devices"]) == (8, 2, 1)
    html = response.content.decode()
    assert '<span class="figure">8</span>' in html
    assert '<span class="figure">2</span>' in html
    assert '<span class="figure">1</span>' in html


def test_dashboard_offers_the_wizard_until_setup_is_completed(console, organisation):
    assert b'href="/admin/getting-started/"' in console.get(DASHBOARD).content

    organisation.setup_completed_at = timezone.now()
    organisation.save()

    assert b'href="/admin/getting-started/"' not in console.get(DASHBOARD).content


def test_dashboard_tells_helpdesk_that_setup_is_for_full_administrators(client, helpdesk, organisation):
    client.force_login(helpdesk)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert b'href="/admin/getting-started/"' not in response.content
    assert b"a full administrator should run the getting-started wizard" in response.content


def test_dashboard_counts_stalled_app_installs_and_links_to_them(console, organisation):
    AppInstallFactory(installed=True)
    AppInstallFactory(failed=True)
    assert cards_of(console.get(DASHBOARD))["card-stalled-apps"]["figure"] == 0

    AppInstallFactory(stalled=True)
    AppInstallFactory(gave_up=True)
    response = console.get(DASHBOARD)
    assert cards_of(response)["card-stalled-apps"] == {"id": "card-stalled-apps", "figure": 2,
                                                       "label": "Stalled app installs",
                                                       "url": "/admin/autopilot/appinstall/?stalled=yes"}
    listing = console.get("/admin/autopilot/appinstall/?stalled=yes")
    assert listing.context["cl"].result_count == 2
