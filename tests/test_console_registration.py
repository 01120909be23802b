"""Console pages of the registration settings: the organisation's sign-in method and default, user
groups and their members (also from the user's form), the wizard's sign-in method; for anonymous
visitors, helpdesk (read-only), enrollment and full administrators."""
import pytest

from accounts.models import AuditEvent, Organisation, UserGroup
from tests.factories import UserGroupFactory

GROUPS = "/admin/accounts/usergroup/"
ADD_GROUP = "/admin/accounts/usergroup/add/"


def organisation_url(organisation):
    return f"/admin/accounts/organisation/{organisation.pk}/change/"


def group_url(group):
    return f"/admin/accounts/usergroup/{group.pk}/change/"


def user_url(user):
    return f"/admin/accounts/user/{user.pk}/change/"


def org_form(**fields):
    return {"name": "Contoso", "enrollment_base_url": "https://enterpriseenrollment.contoso.com",
            "auth_policy": "onpremise", "registration_mode": "password", "pin_length": "8", "pin_lifetime_hours": "168",
            "pin_renewal_allowed": "on", "_save": "Save", **fields}


def group_form(*members, **fields):
    return {"name": "Lab", "priority": "10", "registration_mode": "pin", "pin_length": "6",
            "pin_lifetime_hours": "48", "members": [m.pk for m in members], "_save": "Save", **fields}


def user_form(user, **fields):
    return {"email": user.email, "mdm_username": "", "display_name": user.display_name, "language": user.language,
            "device_limit": str(user.device_limit), "is_active": "on", "_save": "Save", **fields}


# The Organisation page: sign-in method and default registration settings (full administrators)

def test_organisation_page_shows_the_sign_in_method_and_registration_defaults(console, organisation):
    html = console.get(organisation_url(organisation)).content.decode()
    for name in ("auth_policy", "registration_mode", "pin_length", "pin_lifetime_hours", "pin_renewal_allowed"):
        assert f'name="{name}"' in html
    assert "PIN and password" in html


def test_full_admin_chooses_federated_and_pin_and_password_by_default(client, full_admin, organisation):
    client.force_login(full_admin)
    response = client.post(organisation_url(organisation), org_form(
        auth_policy="federated", registration_mode="pin_and_password", pin_length="10", pin_lifetime_hours="24",
        pin_renewal_allowed=""), REMOTE_ADDR="203.0.113.30")
    assert response.status_code == 302
    organisation.refresh_from_db()
    assert (organisation.auth_policy, organisation.registration_mode, organisation.pin_length,
            organisation.pin_lifetime_hours, organisation.pin_renewal_allowed) == (
        "federated", "pin_and_password", 10, 24, False)
    event = AuditEvent.objects.get(action="organisation.changed")
    assert event.actor == full_admin and event.ip == "203.0.113.30"


@pytest.mark.parametrize("field, value", [("pin_length", "5"), ("pin_length", "13"), ("pin_lifetime_hours", "0"),
                                          ("auth_policy", "ldap"), ("registration_mode", "smartcard")])
def test_organisation_page_refuses_out_of_range_settings(console, organisation, field, value):
    response = console.post(organisation_url(organisation), org_form(**{field: value}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    organisation.refresh_from_db()
    assert (organisation.pin_length, organisation.auth_policy) == (8, "onpremise")


def test_enrollment_admin_cannot_change_the_sign_in_method(client, enrollment_admin, organisation):
    client.force_login(enrollment_admin)
    assert client.post(organisation_url(organisation), org_form(auth_policy="federated")).status_code == 403
    assert Organisation.get().auth_policy == "onpremise"


def test_new_organisation_starts_with_the_servers_auth_policy_setting(settings, db):
    settings.ENROLLMENT_AUTH_POLICY = "federated"
    assert Organisation.get().auth_policy == "federated"


# User groups: anonymous, helpdesk (wrong user), enrollment administrator (right user)

def test_user_groups_redirect_anonymous(client, db):
    assert client.get(GROUPS)["Location"].startswith("/admin/login/")
    assert client.post(ADD_GROUP, group_form())["Location"].startswith("/admin/login/")
    assert not UserGroup.objects.exists()


def test_helpdesk_sees_groups_but_cannot_add_or_change_them(client, helpdesk, alice):
    group = UserGroupFactory(name="Lab", members=[alice])
    client.force_login(helpdesk)
    listing = client.get(GROUPS)
    assert listing.status_code == 200 and b"Lab" in listing.content
    assert ADD_GROUP.encode() not in listing.content
    assert client.post(ADD_GROUP, group_form(name="Other")).status_code == 403
    assert client.post(group_url(group), group_form(name="Renamed")).status_code == 403
    assert list(UserGroup.objects.values_list("name", flat=True)) == ["Lab"]


def test_enrollment_admin_adds_a_group_with_members_and_settings(client, enrollment_admin, alice, bob):
    client.force_login(enrollment_admin)
    response = client.post(ADD_GROUP, group_form(alice, bob), REMOTE_ADDR="203.0.113.31")
    assert response.status_code == 302
    group = UserGroup.objects.get()
    assert (group.name, group.priority, group.registration_mode, group.pin_length, group.pin_lifetime_hours,
            group.pin_renewal_allowed) == ("Lab", 10, "pin", 6, 48, False)
    assert set(group.members.all()) == {alice, bob}
    assert AuditEvent.objects.filter(action="usergroup.added", actor=enrollment_admin).exists()
    assert b"Lab" in client.get(GROUPS).content


def test_group_form_refuses_a_short_pin(client, enrollment_admin):
    client.force_login(enrollment_admin)
    response = client.post(ADD_GROUP, group_form(pin_length="4"))
    assert response.status_code == 200
    assert "pin_length" in response.context["adminform"].form.errors
    assert not UserGroup.objects.exists()


# Membership from the user's form

def test_user_form_sets_the_users_groups(console, alice):
    lab, office = UserGroupFactory(name="Lab"), UserGroupFactory(name="Office", members=[alice])
    response = console.post(user_url(alice), user_form(alice, user_groups=[lab.pk]))
    assert response.status_code == 302
    assert list(alice.user_groups.all()) == [lab]
    assert not office.members.exists()


def test_user_form_shows_the_groups_read_only_to_helpdesk(client, helpdesk, alice):
    UserGroupFactory(name="Contractors", members=[alice])
    client.force_login(helpdesk)
    html = client.get(user_url(alice)).content.decode()
    assert "Contractors" in html and 'name="user_groups"' not in html


def test_add_user_form_puts_the_new_user_in_groups(console, organisation):
    lab = UserGroupFactory(name="Lab")
    response = console.post("/admin/accounts/user/add/", {
        "email": "carol@example.com", "mdm_username": "", "display_name": "Carol", "language": "en",
        "device_limit": "3", "user_groups": [lab.pk], "_save": "Save"})
    assert response.status_code == 302
    assert [u.email for u in lab.members.all()] == ["carol@example.com"]


# The getting-started wizard offers the sign-in method

def test_wizard_sets_the_sign_in_method(client, full_admin, organisation):
    client.force_login(full_admin)
    client.post("/admin/getting-started/", {"name": "Fabrikam"})
    page = client.get("/admin/getting-started/enrollment/").content.decode()
    assert 'name="auth_policy"' in page
    client.post("/admin/getting-started/enrollment/", {"host": "mdm.fabrikam.fr", "auth_policy": "federated"})
    client.post("/admin/getting-started/users/", {"users": ""})
    assert Organisation.get().auth_policy == "federated"
    assert "Federated" in client.get("/admin/getting-started/done/").content.decode()
    assert AuditEvent.objects.get(action="organisation.set_up").detail["auth_policy"] == "federated"
