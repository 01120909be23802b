"""/go: the address every user is given; it leads to the enrollment page, through sign-in if needed."""
from urllib.parse import parse_qs, urlsplit

from django.urls import reverse


def test_go_page_sends_anonymous_to_sign_in_then_enroll(client, db):
    response = client.get(reverse("invitations:go"))

    assert response.status_code == 302
    target = urlsplit(response.url)
    assert target.path == reverse("invitations:login")
    assert parse_qs(target.query)["next"] == [reverse("invitations:enroll")]


def test_go_page_leads_signed_in_user_to_own_enrollment_page(client, organisation, alice, bob):
    client.force_login(bob)

    response = client.get(reverse("invitations:go"), follow=True)

    assert response.redirect_chain == [(reverse("invitations:enroll"), 302)]
    assert "bob@example.com" in response.content.decode()
    assert "alice@example.com" not in response.content.decode()


def test_go_page_redirects_signed_in_user_to_enroll(client, organisation, alice):
    client.force_login(alice)

    response = client.get(reverse("invitations:go"))

    assert response.status_code == 302
    assert response.url == reverse("invitations:enroll")


def test_user_with_a_password_needs_no_invitation(client, organisation, alice):
    response = client.get(reverse("invitations:go"), follow=True)
    login_url = response.redirect_chain[-1][0]

    response = client.post(login_url, {"identity": "alice@example.com",
                                       "password": "correct horse battery staple"}, follow=True)

    assert response.redirect_chain[-1] == (reverse("invitations:enroll"), 302)
    assert "alice@example.com" in response.content.decode()
