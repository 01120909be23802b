from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from enrollment import pins
from enrollment.models import Device, RegistrationPin
from tests.enrollment_soap import (
    fault_of, get_policies_body, parse, password_security, post, rst_body, service_url, windows_csr,
)
from tests.factories import PASSWORD
from tests.factories_enrollment import RegistrationPinFactory, create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def pin_mode(organisation):
    organisation.registration_mode = "pin"
    organisation.save(update_fields=["registration_mode"])


@pytest.fixture
def ca_chain(db):
    return create_ca_chain()


def enroll(client, organisation, secret, device_key=40):
    body = rst_body(password_security("alice@example.com", secret), windows_csr(rsa_key(device_key)))
    return post(client, service_url(organisation, "enrollment"), body)


def test_issue_makes_a_hashed_pin_of_the_configured_length_and_replaces_the_previous(alice, organisation):
    organisation.pin_length, organisation.pin_lifetime_hours = 10, 2
    organisation.save(update_fields=["pin_length", "pin_lifetime_hours"])
    first, _ = pins.issue(alice)
    pin, raw = pins.issue(alice)
    assert len(raw) == 10 and raw.isdigit()
    assert raw not in pin.pin_hash
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert list(RegistrationPin.objects.usable()) == [pin]
    assert timedelta(minutes=119) < pin.expires_at - timezone.now() <= timedelta(hours=2)
    assert AuditEvent.objects.filter(action="registration_pin.issued").count() == 2


def test_pin_enrolls_once_and_is_spent(client, organisation, ca_chain, alice):
    _pin, raw = pins.issue(alice)
    with mock.patch.object(MD5PasswordHasher, "verify", autospec=True, side_effect=MD5PasswordHasher.verify) as verify:
        parse(post(client, service_url(organisation, "policy"), get_policies_body("alice@example.com", raw)))
        parse(enroll(client, organisation, raw))
    assert verify.call_count == 1
    device = Device.objects.get()
    assert device.method == Device.Method.PIN
    pin = RegistrationPin.objects.get()
    assert pin.consumed_by == device and pin.consumed_at is not None
    assert AuditEvent.objects.filter(action="registration_pin.used", detail__device=device.pk).exists()

    subcode, _reason, _type = fault_of(enroll(client, organisation, raw, device_key=41))
    assert subcode == "s:Authentication"
    assert Device.objects.count() == 1


@pytest.mark.parametrize("trait", ["expired", "revoked"])
def test_expired_or_revoked_pin_is_refused(client, organisation, ca_chain, alice, trait):
    RegistrationPinFactory(user=alice, raw="24681357", **{trait: True})
    subcode, _reason, _type = fault_of(enroll(client, organisation, "24681357"))
    assert subcode == "s:Authentication"
    assert Device.objects.count() == 0


def test_account_password_is_refused_when_pins_are_required(client, organisation, ca_chain, alice):
    RegistrationPinFactory(user=alice)
    subcode, _reason, _type = fault_of(enroll(client, organisation, PASSWORD))
    assert subcode == "s:Authentication"


def test_wrong_pins_lock_the_account(client, organisation, alice, settings):
    RegistrationPinFactory(user=alice, raw="11112222")
    url = service_url(organisation, "policy")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        post(client, url, get_policies_body("alice@example.com", f"0000000{attempt}"))
    subcode, reason, _type = fault_of(post(client, url, get_policies_body("alice@example.com", "11112222")))
    assert subcode == "s:Authentication" and "Too many" in reason


def test_disabled_user_with_right_pin_is_not_allowed(client, organisation, alice):
    RegistrationPinFactory(user=alice, raw="11112222")
    alice.is_active = False
    alice.save()
    subcode, _reason, _type = fault_of(post(client, service_url(organisation, "policy"),
                                            get_policies_body("alice@example.com", "11112222")))
    assert subcode == "s:Authorization"


def test_a_pin_never_opens_the_console(client, admin_user):
    RegistrationPinFactory(user=admin_user, raw="11112222")
    response = client.post(reverse("admin:login"), {"username": admin_user.email, "password": "11112222"},
                           secure=True)
    assert response.status_code == 200  # the form again, not the redirect of a successful sign-in
    assert "_auth_user_id" not in client.session
