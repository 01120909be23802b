"""Who may replace an enrolled device. The DeviceID and HWDevID of an enrollment request (MS-MDE2
AdditionalContext) are what the client says about itself: they find the earlier enrollments of that
hardware but prove nothing. The same user may re-enroll, and so may an enrollment whose own credential
proves the same hardware (the provisioning package that enrolled it, an Entra token whose deviceid
claim is the device's, an Autopilot record matched by hardware hash); anyone else is refused with
s:Authorization unless the device was wiped or an administrator released it for re-enrollment."""
import pytest

from accounts.models import AuditEvent
from autopilot.models import AutopilotEnrollment
from enrollment import auth, entra
from enrollment.models import Device, SpentEntraToken
from management.models import DeviceCommand
from tests import entra_tokens as tokens
from tests.enrollment_soap import (
    DEVICE_ID, HW_DEV_ID, fault_of, parse, password_security, post, rst_body, service_url, token_security,
    windows_csr,
)
from tests.factories import PASSWORD, UserFactory
from tests.factories_autopilot import AutopilotDeviceFactory, AutopilotEnrollmentFactory, hardware_hash
from tests.factories_enrollment import (
    PPKG_PIN, DeviceCommandFactory, DeviceFactory, EntraSettingsFactory, JwksSetFactory, PinEnrollmentFactory,
    create_ca_chain, rsa_key,
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
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID, hw_dev_id=HW_DEV_ID, federated=True)

    response = enroll(client, organisation, token_security(auth.issue_token(bob)))

    assert_untouched(alices, alice)
    assert_takeover_refused(response, alices)


def test_a_package_cannot_take_over_a_device_it_did_not_enroll(client, organisation, ca_chain, alice):
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


def test_a_spent_token_naming_its_device_re_enrolls_that_device_only(client, organisation, entra_on):
    # The deviceid claim names the Entra device; re-use within the token's lifetime re-enrolls the
    # device that token enrolled, and the request's ids cannot point the re-use at another record.
    token = tokens.make_token()
    parse(tokens.enroll(client, organisation, token, hw_dev_id=HW_DEV_ID))
    first = Device.objects.get()
    assert first.entra_device_id == tokens.DEVICE_GUID

    parse(tokens.enroll(client, organisation, token, hw_dev_id=HW_DEV_ID))
    first.refresh_from_db()
    second = Device.objects.enrolled().get()
    assert first.replaced_by == second
    assert AuditEvent.objects.get(action="device.replaced").detail["grounds"] == "same user"

    other = tokens.enroll(client, organisation, token, device_key=52, device_id="E" * 32, hw_dev_id="E" * 64)
    assert fault_of(other)[:2] == ("s:Authentication", entra.ALREADY_USED)


# -- who may replace ----------------------------------------------------------------------------------

def replaced_grounds(device):
    device.refresh_from_db()
    assert device.status == Device.Status.REPLACED and device.revoked_at is not None
    event = AuditEvent.objects.get(action="device.replaced", target_id=str(device.pk))
    assert event.detail["by"] == device.replaced_by_id
    return event.detail["grounds"]


def test_the_same_user_re_enrolls_and_replaces(client, organisation, ca_chain, alice):
    earlier = DeviceFactory(user=alice, device_id=DEVICE_ID)
    parse(enroll_as(client, organisation, alice.email))
    assert replaced_grounds(earlier) == "same user"
    assert Device.objects.enrolled().get().user == alice


def test_a_device_released_by_an_administrator_is_replaced_once(client, organisation, ca_chain, alice, bob,
                                                                enrollment_admin):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)
    alices.release_for_reenrollment(enrollment_admin)

    parse(enroll_as(client, organisation, bob.email))

    assert replaced_grounds(alices) == "released for re-enrollment"
    event = AuditEvent.objects.get(action="device.replaced")
    assert (event.detail["old_user"], event.detail["new_user"], event.detail["released_by"]) == (
        alice.pk, bob.pk, enrollment_admin.pk)
    bobs = Device.objects.enrolled().get()
    assert bobs.user == bob and not bobs.is_released_for_reenrollment

    # The release is spent: a third user cannot take Bob's new enrollment over.
    carol = UserFactory(email="carol@example.com")
    assert fault_of(enroll_as(client, organisation, carol.email, device_key=61))[0] == "s:Authorization"
    assert_untouched(bobs, bob)


@pytest.mark.parametrize("state", ["retired", "unenrolled", "replaced"])
def test_a_device_that_left_management_does_not_stop_another_user(client, organisation, ca_chain, alice, bob, state):
    gone = DeviceFactory(user=alice, device_id=DEVICE_ID, hw_dev_id=HW_DEV_ID, status=state)

    parse(enroll_as(client, organisation, bob.email))

    gone.refresh_from_db()
    assert gone.status == state and gone.replaced_by is None
    assert Device.objects.enrolled().get().user == bob
    assert not AuditEvent.objects.filter(action="device.replaced").exists()


def wipe(device, target="./Device/Vendor/MSFT/RemoteWipe/doWipe", status=None):
    return DeviceCommandFactory(device=device, verb="Exec", target=target, format="null", source="console:wipe",
                                status=status or DeviceCommand.Status.SUCCEEDED, status_code=200)


def test_a_wiped_device_may_be_enrolled_by_another_user(client, organisation, ca_chain, alice, bob):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)
    wipe(alices)

    parse(enroll_as(client, organisation, bob.email))

    assert replaced_grounds(alices) == "wiped"


@pytest.mark.parametrize("target, status", [
    ("./Device/Vendor/MSFT/RemoteWipe/doWipe", "queued"),  # not acknowledged yet
    ("./Device/Vendor/MSFT/RemoteWipe/doWipe", "failed"),
    ("./Device/Vendor/MSFT/RemoteWipe/AutomaticRedeployment/doAutomaticRedeployment", "succeeded"),  # keeps enrollment
])
def test_a_wipe_not_done_does_not_free_the_device(client, organisation, ca_chain, alice, bob, target, status):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)
    wipe(alices, target, status)

    assert fault_of(enroll_as(client, organisation, bob.email))[0] == "s:Authorization"
    assert_untouched(alices, alice)


def test_the_same_provisioning_package_replaces_its_device(client, organisation, ca_chain):
    package = PinEnrollmentFactory(upn="enroll-lab@example.com", max_devices=5)
    earlier = DeviceFactory(user=package.owner, device_id=DEVICE_ID, pin_enrollment=package, method="ppkg")

    parse(enroll(client, organisation, password_security(package.upn, PPKG_PIN)))

    assert replaced_grounds(earlier) == "same provisioning package"


def test_another_package_of_the_same_owner_cannot_replace_it(client, organisation, ca_chain):
    package = PinEnrollmentFactory(upn="enroll-lab@example.com", max_devices=5)
    other = PinEnrollmentFactory(upn="enroll-hall@example.com", owner=package.owner, max_devices=5)
    earlier = DeviceFactory(user=package.owner, device_id=DEVICE_ID, pin_enrollment=package, method="ppkg")

    assert fault_of(enroll(client, organisation, password_security(other.upn, PPKG_PIN)))[0] == "s:Authorization"
    assert_untouched(earlier, package.owner)


def test_an_entra_token_whose_deviceid_is_the_devices_replaces_it_for_another_user(client, organisation, entra_on,
                                                                                     alice):
    # A shared Entra-joined PC: another user's token names the same Entra device.
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID, entra=True, entra_device_id=tokens.DEVICE_GUID.upper())

    parse(tokens.enroll(client, organisation, tokens.make_token()))

    assert replaced_grounds(alices) == "same Entra device (deviceid claim)"
    assert Device.objects.enrolled().get().upn == tokens.UPN


def test_an_entra_token_naming_another_device_cannot_replace_it(client, organisation, entra_on, alice):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID, entra=True)

    response = tokens.enroll(client, organisation, tokens.make_token(), hw_dev_id=HW_DEV_ID)

    assert_untouched(alices, alice)
    assert_takeover_refused(response, alices)


def with_hardware_hash(body, value):
    anchor = b'<ac:ContextItem Name="Locale">'
    assert anchor in body
    return body.replace(anchor, f'<ac:ContextItem Name="DeviceHardwareData"><ac:Value>{value}</ac:Value>'
                                f'</ac:ContextItem>'.encode() + anchor)


def test_an_autopilot_record_matched_by_hardware_hash_proves_the_same_pc(client, organisation, ca_chain, alice, bob):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)
    AutopilotEnrollmentFactory(device=alices, record=AutopilotDeviceFactory(hardware_hash=hardware_hash(7)))
    body = rst_body(password_security(bob.email, PASSWORD), windows_csr(rsa_key(60)))

    # Another hardware hash proves nothing.
    response = post(client, service_url(organisation, "enrollment"), with_hardware_hash(body, hardware_hash(8)))
    assert_untouched(alices, alice)
    assert_takeover_refused(response, alices)

    parse(post(client, service_url(organisation, "enrollment"), with_hardware_hash(body, hardware_hash(7))))
    assert replaced_grounds(alices) == "Autopilot record matched by hardware hash"
    # The new enrollment is linked to the record in its first session, by the hash it answers there
    # (Windows puts no hash in its request: tests/test_autopilot_recognition.py).
    assert not AutopilotEnrollment.objects.filter(device=Device.objects.enrolled().get()).exists()


def test_an_api_release_lets_the_next_user_enroll_the_pc(client, organisation, ca_chain, alice, bob, enrollment_api):
    alices = DeviceFactory(user=alice, device_id=DEVICE_ID)
    assert fault_of(enroll_as(client, organisation, bob.email))[0] == "s:Authorization"

    response = enrollment_api.post(f"/api/v1/devices/{alices.pk}/actions/release/", {}, format="json")
    assert response.json()["released"] == [alices.pk]
    parse(enroll_as(client, organisation, bob.email))

    assert replaced_grounds(alices) == "released for re-enrollment"
    assert Device.objects.enrolled().get().user == bob
