"""Registration authentication settings end to end over HTTP: password, registration PIN only (in
Windows' own box), PIN and password (discovery → Federated → our sign-in page with both fields →
GetPolicies and RST with its token), and which settings win: a user group or the default."""
import re
from html import unescape

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.registration import effective_registration_settings
from enrollment import auth
from enrollment.models import Device, RegistrationPin
from tests.enrollment_soap import (
    NS, discover_body, fault_of, get_policies_body, get_policies_token_body, parse, password_security, post, rst_body,
    service_url, token_security, windows_csr,
)
from tests.factories import PASSWORD, UserGroupFactory
from tests.factories_enrollment import RegistrationPinFactory, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

AUTODISCOVERY = "/EnrollmentServer/Discovery.svc"
APPRU = "ms-app://windows.immersivecontrolpanel"
ENROLL = reverse("invitations:enroll")


@pytest.fixture
def ca_chain(db):
    return create_ca_chain()


def set_default(organisation, **fields):
    for name, value in fields.items():
        setattr(organisation, name, value)
    organisation.save()


def discover(client, policies=("OnPremise", "Federated")):
    return post(client, AUTODISCOVERY, discover_body(policies=policies))


def discovered_policy(response):
    return parse(response).findtext(".//d:DiscoverResult/d:AuthPolicy", namespaces=NS)


def onpremise_enroll(client, organisation, username, secret, device_key=50):
    parse(post(client, service_url(organisation, "policy"), get_policies_body(username, secret)))
    body = rst_body(password_security(username, secret), windows_csr(rsa_key(device_key)))
    return post(client, service_url(organisation, "enrollment"), body)


def pin_from_enroll_page(client, user):
    client.force_login(user)
    html = client.get(ENROLL).content.decode()
    client.logout()
    match = re.search(r'id="registration-pin">(\d+)<', html)
    assert match, html
    return match.group(1)


def sign_in_page(client, organisation, login_hint="alice@example.com"):
    return client.get(service_url(organisation, "signin"), {"appru": APPRU, "login_hint": login_hint}, secure=True)


def sign_in(client, organisation, **fields):
    data = {"username": "alice@example.com", "appru": APPRU, **fields}
    return client.post(service_url(organisation, "signin"), data, secure=True)


def wresult(response):
    match = re.search(r'name="wresult" value="([^"]+)"', response.content.decode())
    assert match, response.content.decode()[:1500]
    return unescape(match.group(1))


def token_enroll(client, organisation, token, device_key=51):
    parse(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    body = rst_body(token_security(token), windows_csr(rsa_key(device_key)))
    return post(client, service_url(organisation, "enrollment"), body)


# Password (the default)

def test_password_mode_enrolls_with_the_account_password_and_no_pin(client, organisation, ca_chain, alice):
    assert discovered_policy(discover(client)) == "OnPremise"
    parse(onpremise_enroll(client, organisation, "alice@example.com", PASSWORD))
    assert Device.objects.get().method == Device.Method.ONPREMISE
    assert not RegistrationPin.objects.exists()


# Registration PIN only, typed in Windows' password box (MS-MDE2 3.4.4.1.1.1.3)

def test_pin_only_user_enrolls_on_premise_with_the_pin_from_the_enrollment_page(client, organisation, ca_chain,
                                                                                  alice):
    set_default(organisation, registration_mode="pin", pin_length=6)
    pin = pin_from_enroll_page(client, alice)
    assert len(pin) == 6

    assert discovered_policy(discover(client)) == "OnPremise"
    parse(onpremise_enroll(client, organisation, "alice@example.com", pin))

    device = Device.objects.get()
    assert device.method == Device.Method.PIN
    assert RegistrationPin.objects.get().consumed_by == device
    assert AuditEvent.objects.filter(action="registration_pin.used", target_id=str(alice.pk)).exists()


def test_pin_only_user_cannot_enroll_with_the_password(client, organisation, ca_chain, alice):
    set_default(organisation, registration_mode="pin")
    RegistrationPinFactory(user=alice, raw="13572468")
    subcode, reason, _type = fault_of(post(client, service_url(organisation, "policy"),
                                           get_policies_body("alice@example.com", PASSWORD)))
    assert (subcode, reason) == ("s:Authentication", auth.BAD_PIN)
    assert AuditEvent.objects.filter(action="registration_pin.failed", target_id=str(alice.pk)).exists()


@pytest.mark.parametrize("state", ["expired", "revoked", "used", "wrong"])
def test_unusable_or_wrong_pin_is_an_authentication_fault_and_enrolls_nothing(client, organisation, ca_chain, alice,
                                                                                state):
    set_default(organisation, registration_mode="pin")
    traits = {"expired": {"expired": True}, "revoked": {"revoked": True}}.get(state, {})
    pin = RegistrationPinFactory(user=alice, raw="24681357", **traits)
    if state == "used":
        pin.consume(None)
    secret = "99999999" if state == "wrong" else "24681357"
    body = rst_body(password_security("alice@example.com", secret), windows_csr(rsa_key(52)))
    subcode, reason, _type = fault_of(post(client, service_url(organisation, "enrollment"), body))
    assert (subcode, reason) == ("s:Authentication", auth.BAD_PIN)
    assert not Device.objects.exists()


def test_pin_only_user_types_the_pin_on_the_sign_in_page_of_a_federated_organisation(client, organisation,
                                                                                      ca_chain, alice):
    set_default(organisation, registration_mode="pin", auth_policy="federated")
    RegistrationPinFactory(user=alice, raw="11223344")
    page = sign_in_page(client, organisation).content.decode()
    assert 'name="pin"' in page and 'name="password"' not in page

    token = wresult(sign_in(client, organisation, pin="11223344"))
    parse(token_enroll(client, organisation, token))

    device = Device.objects.get()
    assert device.method == Device.Method.FEDERATED
    assert RegistrationPin.objects.get().consumed_by == device


# PIN and password: Federated even for an on-premise organisation (enrollment/discovery.py)

def test_pin_and_password_user_enrolls_through_discovery_sign_in_page_and_token(client, organisation, ca_chain,
                                                                                 alice):
    UserGroupFactory(pin_and_password=True, members=[alice])
    pin = pin_from_enroll_page(client, alice)

    response = discover(client)
    assert discovered_policy(response) == "Federated"
    signin_url = parse(response).findtext(".//d:DiscoverResult/d:AuthenticationServiceUrl", namespaces=NS)
    assert signin_url.endswith(service_url(organisation, "signin"))

    page = sign_in_page(client, organisation).content.decode()
    assert 'name="password"' in page and 'name="pin"' in page
    token = wresult(sign_in(client, organisation, password=PASSWORD, pin=pin))
    parse(token_enroll(client, organisation, token))

    device = Device.objects.get()
    assert (device.user, device.method) == (alice, Device.Method.FEDERATED)
    assert RegistrationPin.objects.get().consumed_by == device
    assert AuditEvent.objects.filter(action="enrollment.signed_in", detail__mode="pin_and_password").exists()


def test_other_users_of_an_on_premise_organisation_still_discover_on_premise(client, organisation, bob):
    UserGroupFactory(pin_and_password=True, members=[bob])
    assert discovered_policy(discover(client)) == "OnPremise"  # the body names alice


def test_pin_and_password_user_on_a_device_without_web_sign_in_gets_a_clear_authorization_fault(client,
                                                                                                organisation, alice):
    UserGroupFactory(pin_and_password=True, members=[alice])
    subcode, reason, error_type = fault_of(discover(client, policies=("OnPremise",)))
    assert (subcode, error_type) == ("s:Authorization", "NotSupported")
    assert "PIN and your password" in reason and "sign-in page" in reason


def test_pin_and_password_user_cannot_use_windows_password_box(client, organisation, alice):
    UserGroupFactory(pin_and_password=True, members=[alice])
    RegistrationPinFactory(user=alice, raw="11223344")
    for secret in (PASSWORD, "11223344"):
        subcode, reason, _type = fault_of(post(client, service_url(organisation, "policy"),
                                               get_policies_body("alice@example.com", secret)))
        assert (subcode, reason) == ("s:Authorization", auth.NEEDS_SIGN_IN_PAGE)


@pytest.mark.parametrize("fields", [{"password": "wrong password", "pin": "11223344"},
                                    {"password": PASSWORD, "pin": "99999999"}])
def test_sign_in_page_refuses_a_wrong_pin_or_password_without_saying_which(client, organisation, alice, fields):
    UserGroupFactory(pin_and_password=True, members=[alice])
    RegistrationPinFactory(user=alice, raw="11223344")
    response = sign_in(client, organisation, **fields)
    assert response.status_code == 200
    assert auth.BAD_PIN_OR_PASSWORD in unescape(response.content.decode())
    assert b'name="wresult"' not in response.content
    assert AuditEvent.objects.filter(action="enrollment.signin_failed").exists()


def test_sign_in_page_needs_the_pin_field_for_pin_and_password_users(client, organisation, alice):
    UserGroupFactory(pin_and_password=True, members=[alice])
    response = sign_in(client, organisation, password=PASSWORD)
    assert response.status_code == 200
    assert "pin" in response.context["form"].errors
    assert b'name="wresult"' not in response.content


def test_token_of_a_pin_spent_elsewhere_is_refused(client, organisation, ca_chain, alice):
    UserGroupFactory(pin_and_password=True, members=[alice])
    RegistrationPinFactory(user=alice, raw="11223344")
    token = wresult(sign_in(client, organisation, password=PASSWORD, pin="11223344"))
    RegistrationPin.objects.get().revoke()
    subcode, reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert (subcode, reason) == ("s:Authentication", auth.BAD_PIN)


def test_password_users_of_an_on_premise_organisation_cannot_use_a_token(client, organisation, alice):
    token = auth.issue_token(alice)
    subcode, reason, _type = fault_of(post(client, service_url(organisation, "policy"), get_policies_token_body(token)))
    assert (subcode, reason) == ("s:Authentication", auth.WRONG_METHOD)


# Which settings apply: the user's highest-priority group, else the organisation's default

def test_group_settings_override_the_default_for_members_only(organisation, alice, bob):
    set_default(organisation, registration_mode="pin", pin_length=12)
    group = UserGroupFactory(name="Contractors", registration_mode="password", pin_length=6, members=[alice])

    assert effective_registration_settings(alice).mode == "password"
    assert effective_registration_settings(alice).group == group
    assert (effective_registration_settings(bob).mode, effective_registration_settings(bob).pin_length) == ("pin", 12)
    assert effective_registration_settings(None).mode == "pin"


def test_the_group_with_the_lowest_priority_number_wins(organisation, alice):
    UserGroupFactory(priority=20, pin_only=True, members=[alice])
    UserGroupFactory(priority=5, pin_and_password=True, members=[alice])
    assert effective_registration_settings(alice).mode == "pin_and_password"


def test_group_precedence_decides_what_windows_must_send(client, organisation, ca_chain, alice):
    UserGroupFactory(pin_only=True, members=[alice])
    pin = pin_from_enroll_page(client, alice)
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"),
                                            get_policies_body("alice@example.com", PASSWORD)))
    assert subcode == "s:Authentication"
    parse(onpremise_enroll(client, organisation, "alice@example.com", pin))
    assert Device.objects.get().method == Device.Method.PIN
