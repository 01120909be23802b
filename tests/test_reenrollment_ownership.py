"""Who may replace an enrolled device. The DeviceID and HWDevID of an enrollment request (MS-MDE2
AdditionalContext) are what the client says about itself: they find the earlier enrollments of that
hardware but prove nothing. The same user may re-enroll, and so may an enrollment whose own credential
proves the same hardware (the provisioning package that enrolled it, an Entra token whose deviceid
claim is the device's, an Autopilot record matched by hardware hash); anyone else is refused with
s:Authorization unless the device was wiped or an administrator released it for re-enrollment."""
import pytest

from enrollment import entra
from enrollment.models import Device, SpentEntraToken
from invitations.models import AuditEvent
from tests import entra_tokens as tokens
from tests.enrollment_soap import (
    DEVICE_ID, HW_DEV_ID, fault_of, parse, password_security, post, rst_body, service_url, token_security,
    windows_csr,
)
from tests.factories import PASSWORD
from tests.factories_enrollment import (
    DeviceFactory, EntraSettingsFactory, JwksSetFactory, create_ca_chain, rsa_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca_chain(db):
    return create_ca_chain()


def enroll(client, organisation, security, *, device_key=60, **items):
    csr = windows_csr(rsa_key(device_key), items.get("device_id", DEVICE_ID))
    return post(client, service_url(organisation, "enrollment"), rst_body(security, csr, **items))


def enroll_as(client, organisation, email, **items):
    return enroll(client, organisation, password_security(email, PASSWORD), **items)


def assert_untouched(device, user):
    device.refresh_from_db()
    assert (device.status, device.revoked_at, device.replaced_by, device.user) == (
        Device.Status.ENROLLED, None, None, user)


def assert_takeover_refused(response, device):
    subcode, _reason, _type = fault_of(response)
    assert subcode == "s:Authorization"
    assert not AuditEvent.objects.filter(action="device.replaced").exists()
    refusal = AuditEvent.objects.get(action="enrollment.refused")
    assert refusal.detail["fault"] == "s:Authorization"
    assert f"device {device.pk} " in refusal.detail["reason"]
    event = AuditEvent.objects.get(action="device.replacement_refused")
    assert event.target_id == str(device.pk)
    return event


# -- the attacks: another user names someone else's device ---------------------------------------------

def test_another_user_cannot_take_over_a_device_by_its_device_id(client, organisation, ca_chain, alice, bob):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)

    response = enroll_as(client, organisation, bob.email, hw_dev_id="C" * 64)

    assert_untouched(alices, alice)
    event = assert_takeover_refused(response, alices)
    assert Device.objects.count() == 1
    assert (event.detail["match"], event.detail["owner"], event.detail["claimed_by"]) == ("DeviceID", alice.pk, bob.pk)


def test_another_user_cannot_take_over_a_device_by_its_hardware_id(client, organisation, ca_chain, alice, bob):
    alices = DeviceFactory(user=alice, hw_dev_id=HW_DEV_ID)

    response = enroll_as(client, organisation, bob.email, device_id="D" * 32)

    assert_untouched(alices, alice)
    event = assert_takeover_refused(response, alices)
    assert event.detail["match"] == "HWDevID"


def test_another_users_federated_token_cannot_take_over_a_device(client, organisation, ca_chain, alice, bob):
    from enrollment import auth

    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID, hw_dev_id=HW_DEV_ID, federated=True)

    response = enroll(client, organisation, token_security(auth.issue_token(bob)))

    assert_untouched(alices, alice)
    assert_takeover_refused(response, alices)


def test_a_package_cannot_take_over_a_device_it_did_not_enroll(client, organisation, ca_chain, alice):
    from tests.factories_enrollment import PPKG_PIN, PinEnrollmentFactory

    package = PinEnrollmentFactory(upn="enroll-lab@example.com", max_devices=5)
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)

    response = enroll(client, organisation, password_security(package.upn, PPKG_PIN))

    assert_untouched(alices, alice)
    assert_takeover_refused(response, alices)


# -- Entra: a spent token is re-used only when its own deviceid claim is the device's ------------------

@pytest.fixture
def entra_on(organisation, ca_chain):
    EntraSettingsFactory()
    JwksSetFactory()


def test_a_spent_token_without_a_deviceid_claim_cannot_re_enroll_by_naming_the_same_hardware(
        client, organisation, entra_on):
    # An "add work or school account" token carries no deviceid: nothing in it names a PC. Its replay
    # from another PC that copies the DeviceID and HWDevID of the first is not a re-enrollment.
    token = tokens.make_token(deviceid=None)
    parse(tokens.enroll(client, organisation, token, hw_dev_id=HW_DEV_ID))
    first = Device.objects.get()

    replay = tokens.enroll(client, organisation, token, device_key=52, hw_dev_id=HW_DEV_ID)

    first.refresh_from_db()
    assert (first.status, first.revoked_at) == (Device.Status.ENROLLED, None)
    assert fault_of(replay)[:2] == ("s:Authentication", entra.ALREADY_USED)
    assert "replayed" in AuditEvent.objects.get(action="enrollment.refused").detail["reason"]
    assert Device.objects.count() == 1
    assert SpentEntraToken.objects.get().device == first
