"""Every endpoint that takes a credential locks after the configured failures (hardening):
once locked, even the right secret is refused. One compact test per endpoint; the lockout's growth,
audit and reset are tested in test_lockout.py, test_ppkg_enrollment.py and test_management_endpoint.py.

(The invitation's set-password step takes no secret but the 256-bit link itself, which is single-use.)"""
import secrets

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from enrollment import auth
from invitations.models import hash_token
from tests import omadm_messages as sml
from tests.enrollment_soap import (
    fault_of, get_policies_body, password_security, post, rst_body, service_url, windows_csr,
)
from tests.factories import PASSWORD, AdminFactory, InvitationEmailFactory, InvitationFactory
from tests.factories_enrollment import (
    PPKG_PIN, DeviceFactory, PinEnrollmentFactory, RegistrationPinFactory, create_ca_chain, rsa_key,
)

pytestmark = pytest.mark.django_db

LIMIT = 3
PIN = "11112222"


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.ENROLLMENT_PPKG_FAILURE_LIMIT = LIMIT


def fail_then_try_right(attempt, wrong, right):
    """The first LIMIT attempts with wrong secrets, then one with the right secret: its response."""
    for n in range(LIMIT):
        attempt(f"{wrong}{n}")
    return attempt(right)


def soap_refusal(response):
    subcode, reason, _type = fault_of(response)
    return subcode, reason


# --- pages ------------------------------------------------------------------------------------------

def test_console_sign_in_locks(client):
    admin = AdminFactory(email="ops@example.com")
    locked = fail_then_try_right(
        lambda secret: client.post(reverse("admin:login"), {"username": admin.email, "password": secret}),
        "wrong", PASSWORD)
    assert locked.status_code == 429 and "_auth_user_id" not in client.session


def test_portal_sign_in_locks(client, organisation, alice):
    locked = fail_then_try_right(
        lambda secret: client.post(reverse("invitations:login"), {"identity": alice.email, "password": secret}),
        "wrong", PASSWORD)
    assert locked.status_code == 429


def test_invitation_sign_in_locks(client, organisation, alice):
    raw = secrets.token_urlsafe(32)
    InvitationEmailFactory(invitation=InvitationFactory(user=alice), token_hash=hash_token(raw), status="sent")
    link = reverse("invitations:accept", args=[raw])
    locked = fail_then_try_right(lambda secret: client.post(link, {"password": secret}), "wrong", PASSWORD)
    assert locked.status_code == 429
    assert not client.get(reverse("invitations:enroll")).wsgi_request.user.is_authenticated


def test_federated_sign_in_page_locks(client, organisation, alice):
    organisation.auth_policy = "federated"
    organisation.save()
    url = reverse("enrollment:signin", kwargs={"key": organisation.enrollment_key})
    appru = "ms-app://windows.immersivecontrolpanel"
    locked = fail_then_try_right(
        lambda secret: client.post(url, {"username": alice.email, "password": secret, "appru": appru}, secure=True),
        "wrong", PASSWORD)
    assert auth.LOCKED_OUT in locked.content.decode() and "wresult" not in locked.content.decode()


# --- device endpoints ---------------------------------------------------------------------------------

def test_get_policies_username_token_locks(client, organisation, alice):
    url = service_url(organisation, "policy")
    locked = fail_then_try_right(lambda secret: post(client, url, get_policies_body(alice.email, secret)),
                                 "wrong", PASSWORD)
    assert soap_refusal(locked) == ("s:Authentication", auth.LOCKED_OUT)


def test_rst_username_token_locks(client, organisation, alice):
    create_ca_chain()
    url = service_url(organisation, "enrollment")
    locked = fail_then_try_right(
        lambda secret: post(client, url, rst_body(password_security(alice.email, secret), windows_csr(rsa_key(1)))),
        "wrong", PASSWORD)
    assert soap_refusal(locked) == ("s:Authentication", auth.LOCKED_OUT)


def test_registration_pin_locks(client, organisation, alice):
    organisation.registration_mode = "pin"
    organisation.save(update_fields=["registration_mode"])
    RegistrationPinFactory(user=alice, raw=PIN)
    url = service_url(organisation, "policy")
    locked = fail_then_try_right(lambda secret: post(client, url, get_policies_body(alice.email, secret)),
                                 "0000000", PIN)
    assert soap_refusal(locked) == ("s:Authentication", auth.LOCKED_OUT)


def test_provisioning_package_pin_locks(client, organisation):
    package = PinEnrollmentFactory(upn="lab@example.com", max_devices=3)
    url = service_url(organisation, "policy")
    locked = fail_then_try_right(lambda secret: post(client, url, get_policies_body(package.upn, secret)),
                                 "WRONG-PIN", PPKG_PIN)
    subcode, reason = soap_refusal(locked)
    assert subcode == "s:Authentication" and "locked" in reason


def _digest_message(device, data, session):
    return sml.package1(device.device_id, cred=("syncml:auth-md5", data), session=session)


def test_oma_dm_digest_locks_the_device_for_the_guessing_address_only(client, settings):
    device = DeviceFactory(appsrv_digest=sml.appsrv_digest("dev", "secret"))

    def attempt(data, remote="203.0.113.66", session="1"):
        return client.post(sml.URL, _digest_message(device, data, session), content_type=sml.CONTENT_TYPE,
                           REMOTE_ADDR=remote)

    replies = [sml.read(attempt(f"d3Jvbmc{n}", session=str(n + 1)).content) for n in range(LIMIT)]
    assert [r.header_status[4] for r in replies] == ["401"] * LIMIT
    device.refresh_from_db()
    correct = sml.md5_cred("dev", "secret", device.appsrv_nonce)
    locked = attempt(correct, session="9")
    assert locked.status_code == 429
    assert AuditEvent.objects.filter(action="management.locked_out", target_id=str(device.pk)).count() == 1
    # The device, from its own address, still gets in with the right digest.
    accepted = sml.read(attempt(correct, remote="198.51.100.20", session="10").content)
    assert accepted.header_status[4] == "200"
