"""Devices enrolling from a provisioning package with a PIN enrollment's UPN and PIN, through the real
Discovery, Policy and Enrollment endpoints (Provisioning CSP Enrollments, MS-MDE2 3.4.4.1.1.1.3)."""
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import AuditEvent, AuthPolicy, Organisation
from enrollment import ppkg
from enrollment.models import Device, PinEnrollment, PinEnrollmentFailure
from tests.enrollment_soap import (
    NS, discover_body, fault_of, get_policies_body, parse, password_security, post, rst_body, service_url, windows_csr,
)
from tests.factories import UserFactory
from tests.factories_enrollment import (PPKG_PIN, ConfigurationGroupFactory, DeviceFactory, PinEnrollmentFactory,
                                        PinEnrollmentFailureFactory, create_ca_chain, rsa_key)

pytestmark = pytest.mark.django_db
UPN = "enroll-lab@example.com"


@pytest.fixture
def ca_chain(db):
    return create_ca_chain()


@pytest.fixture
def owner(db):
    return UserFactory(email="it-pool@example.com", device_limit=1)


@pytest.fixture
def package(owner):
    return PinEnrollmentFactory(upn=UPN, owner=owner, max_devices=3,
                                configuration_groups=[ConfigurationGroupFactory(name="Lab PCs")])


def device_id(n):
    return f"{n:032X}"


def enroll(client, organisation, *, n=1, pin=PPKG_PIN, upn=UPN, hw_dev_id=None):
    body = rst_body(password_security(upn, pin), windows_csr(rsa_key(40)), device_id=device_id(n),
                    hw_dev_id=hw_dev_id or f"{n + 0xABC:064X}", device_name=f"LAB-{n:03d}")
    return post(client, service_url(organisation, "enrollment"), body)


def get_policies(client, organisation, *, pin=PPKG_PIN, upn=UPN):
    return post(client, service_url(organisation, "policy"), get_policies_body(upn, pin))


def test_package_device_enrolls_for_the_owner_with_one_pin_hash(client, organisation, ca_chain, package, owner):
    with mock.patch.object(MD5PasswordHasher, "verify", autospec=True, side_effect=MD5PasswordHasher.verify) as verify:
        parse(get_policies(client, organisation))
        parse(enroll(client, organisation))
    assert verify.call_count == 1
    device = Device.objects.get()
    assert (device.method, device.user, device.upn, device.pin_enrollment) == ("ppkg", owner, UPN, package)
    assert device.get_method_display() == "Provisioning package"
    event = AuditEvent.objects.get(action="pin_enrollment.device_enrolled")
    assert event.target_id == str(package.pk)
    assert event.detail["device"] == device.pk and event.detail["configuration_groups"] == ["Lab PCs"]
    assert [group.name for group in device.configuration_groups.all()] == ["Lab PCs"]


def test_package_device_joins_every_group_of_its_package_only(client, organisation, ca_chain, package):
    """Recorded in the groups' order (the lower priority number first), and no group of another package."""
    ConfigurationGroupFactory(name="Kiosks", priority=5).pin_enrollments.add(package)
    ConfigurationGroupFactory(name="Other package").pin_enrollments.add(PinEnrollmentFactory())
    ConfigurationGroupFactory(name="No package")
    parse(enroll(client, organisation))
    device = Device.objects.get()
    event = AuditEvent.objects.get(action="pin_enrollment.device_enrolled")
    assert event.detail["configuration_groups"] == ["Kiosks", "Lab PCs"]
    assert sorted(group.name for group in device.configuration_groups.all()) == ["Kiosks", "Lab PCs"]


def test_upn_is_matched_whatever_its_case(client, organisation, ca_chain, package):
    parse(enroll(client, organisation, upn="Enroll-Lab@EXAMPLE.com"))
    assert Device.objects.get().pin_enrollment == package


def test_many_devices_enroll_with_one_pin_until_the_maximum(client, organisation, ca_chain, package, owner):
    # The owner's own device limit (1) does not apply: the package has its own maximum (3).
    for n in range(1, 4):
        parse(enroll(client, organisation, n=n))
    assert package.devices.count() == 3

    subcode, _reason, error_type = fault_of(enroll(client, organisation, n=4))

    assert (subcode, error_type) == ("s:Authorization", "DeviceCapReached")
    assert package.devices.count() == 3
    refused = AuditEvent.objects.get(action="enrollment.refused")
    assert refused.detail["error_type"] == "DeviceCapReached"
    assert PinEnrollment.objects.with_device_count().get().status == "used up"


def test_used_up_package_still_re_enrolls_hardware_it_enrolled(client, organisation, ca_chain, package):
    for n in range(1, 4):
        parse(enroll(client, organisation, n=n))

    parse(enroll(client, organisation, n=2))

    assert package.devices.filter(device_id=device_id(2), status="replaced").count() == 1
    assert package.devices.exclude(status="replaced").count() == 3


def test_device_enrolled_otherwise_does_not_count_against_the_package(client, organisation, ca_chain, package, owner):
    DeviceFactory(user=owner)
    for n in range(1, 4):
        parse(enroll(client, organisation, n=n))
    assert package.devices.count() == 3


def test_expired_package_is_refused_with_authentication(client, organisation, ca_chain, package):
    PinEnrollment.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for response in (get_policies(client, organisation), enroll(client, organisation)):
        subcode, reason, _type = fault_of(response)
        assert subcode == "s:Authentication" and "expired or was revoked" in reason
    assert not Device.objects.exists()


def test_revoked_package_is_refused_and_enrolled_devices_stay(client, organisation, ca_chain, package):
    parse(enroll(client, organisation, n=1))
    ppkg.revoke(package)
    subcode, _reason, _type = fault_of(enroll(client, organisation, n=2))
    assert subcode == "s:Authentication"
    assert list(Device.objects.values_list("status", flat=True)) == ["enrolled"]


def test_revocation_between_policy_and_enrollment_is_honoured(client, organisation, ca_chain, package):
    parse(get_policies(client, organisation))
    ppkg.revoke(package)
    subcode, _reason, _type = fault_of(enroll(client, organisation))
    assert subcode == "s:Authentication" and not Device.objects.exists()


def test_regenerated_pin_replaces_the_old_one(client, organisation, ca_chain, package):
    parse(get_policies(client, organisation))  # the old PIN verified and remembered
    new_pin = ppkg.regenerate(package)

    subcode, _reason, _type = fault_of(enroll(client, organisation, n=1))
    assert subcode == "s:Authentication"
    parse(enroll(client, organisation, n=2, pin=new_pin))
    assert Device.objects.get().device_id == device_id(2)


def test_inactive_owner_is_refused_with_authorization(client, organisation, ca_chain, package, owner):
    owner.is_active = False
    owner.save()
    subcode, _reason, _type = fault_of(get_policies(client, organisation))
    assert subcode == "s:Authorization"


def test_wrong_pins_lock_the_address_out_and_alert_administrators(client, organisation, ca_chain, package, settings):
    settings.ENROLLMENT_PPKG_FAILURE_LIMIT = 3
    settings.ENROLLMENT_PPKG_LOCKOUT_SECONDS = 60
    for _ in range(3):
        subcode, _reason, _type = fault_of(get_policies(client, organisation, pin="WRONG-PIN"))
        assert subcode == "s:Authentication"
    failures = PinEnrollmentFailure.objects.get(pin_enrollment=package)
    assert failures.is_locked and failures.lockouts == 1 and failures.address == "127.0.0.1"
    assert timedelta(seconds=50) < failures.locked_until - timezone.now() <= timedelta(seconds=60)
    alert = AuditEvent.objects.get(action="pin_enrollment.address_locked")
    assert alert.target_id == str(package.pk) and alert.detail["seconds"] == 60
    assert alert.detail["scope"] == "address" and alert.detail["address"] == "127.0.0.1"
    refused = AuditEvent.objects.filter(action="enrollment.refused")
    assert refused.aggregate(total=Sum("count"))["total"] == 3 and refused.count() <= 2  # coalesced per minute

    # Locked out: even the right PIN is refused from there, and nothing is hashed meanwhile.
    with mock.patch.object(MD5PasswordHasher, "verify", autospec=True) as verify:
        subcode, reason, _type = fault_of(enroll(client, organisation))
    assert subcode == "s:Authentication" and "locked" in reason
    assert verify.call_count == 0 and not Device.objects.exists()
    package.refresh_from_db()
    assert not package.is_locked


def test_each_further_lockout_lasts_longer(client, organisation, ca_chain, package, settings):
    settings.ENROLLMENT_PPKG_FAILURE_LIMIT = 2
    settings.ENROLLMENT_PPKG_LOCKOUT_SECONDS = 60
    durations = []
    for _ in range(3):
        for _ in range(2):
            fault_of(get_policies(client, organisation, pin="WRONG-PIN"))
        durations.append(AuditEvent.objects.filter(action="pin_enrollment.address_locked").first().detail["seconds"])
        PinEnrollmentFailure.objects.update(locked_until=timezone.now())  # time passes
    assert durations == [60, 120, 240]
    assert ppkg.lockout_duration(40) == timedelta(days=1)


def test_right_pin_resets_the_count_of_wrong_ones_from_that_address(client, organisation, ca_chain, package,
                                                                     settings):
    settings.ENROLLMENT_PPKG_FAILURE_LIMIT = 3
    for _ in range(2):
        fault_of(get_policies(client, organisation, pin="WRONG-PIN"))
    parse(get_policies(client, organisation))
    fault_of(get_policies(client, organisation, pin="WRONG-PIN"))
    assert PinEnrollmentFailure.objects.get(pin_enrollment=package).failed_attempts == 1
    package.refresh_from_db()
    # The backstop counts every wrong PIN of its window, right PINs or not.
    assert not package.is_locked and package.failed_attempts == 3


def test_an_ipv6_client_is_counted_by_its_64(client, organisation, ca_chain, package, settings):
    settings.ENROLLMENT_PPKG_FAILURE_LIMIT = 3
    for n in range(3):
        fault_of(policies_from(client, organisation, f"2001:db8:0:1::{n + 1}", pin="WRONG-PIN"))
    subcode, reason, _type = fault_of(policies_from(client, organisation, "2001:db8:0:1:ffff::9"))
    assert "locked" in reason
    assert parse(policies_from(client, organisation, "2001:db8:0:2::1")).find("s:Body/s:Fault", NS) is None
    assert PinEnrollmentFailure.objects.get().address == "2001:db8:0:1::/64"


def test_unlocking_forgets_every_address(client, organisation, ca_chain, package):
    PinEnrollmentFailureFactory(pin_enrollment=package, locked=True)
    assert package.has_failures()
    ppkg.unlock(package)
    assert not package.has_failures() and not PinEnrollmentFailure.objects.exists()


def test_unknown_upn_is_an_ordinary_user_sign_in(client, organisation, ca_chain, package):
    subcode, reason, _type = fault_of(get_policies(client, organisation, upn="enroll-other@example.com"))
    assert subcode == "s:Authentication" and "user name or password" in reason
    package.refresh_from_db()
    assert package.failed_attempts == 0


def test_federated_organisation_answers_on_premise_to_a_package(client, organisation, ca_chain, package, settings):
    Organisation.objects.update(auth_policy=AuthPolicy.FEDERATED)
    url = service_url(organisation, "discovery")
    root = parse(post(client, url, discover_body(policies=("OnPremise",))))
    assert root.findtext("s:Body/d:DiscoverResponse/d:DiscoverResult/d:AuthPolicy", namespaces=NS) == "OnPremise"
    # A user's device offering both still gets the organisation's policy.
    root = parse(post(client, url, discover_body(policies=("OnPremise", "Federated"))))
    assert root.findtext("s:Body/d:DiscoverResponse/d:DiscoverResult/d:AuthPolicy", namespaces=NS) == "Federated"

    parse(get_policies(client, organisation))
    parse(enroll(client, organisation))
    assert Device.objects.get().method == "ppkg"


def test_federated_organisation_without_packages_still_refuses_on_premise(client, organisation, ca_chain, settings):
    Organisation.objects.update(auth_policy=AuthPolicy.FEDERATED)
    PinEnrollmentFactory(revoked=True)
    response = post(client, service_url(organisation, "discovery"), discover_body(policies=("OnPremise",)))
    subcode, _reason, _type = fault_of(response)
    assert subcode == "s:Authorization"


@pytest.mark.django_db(transaction=True)
def test_concurrent_devices_cannot_exceed_the_maximum(organisation, ca_chain, package):
    """Devices racing for the last slots queue on the PIN enrollment's row lock."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a database with row locks (PostgreSQL)")
    from django.test import Client

    parse(get_policies(Client(), organisation))  # verified once, as GetPolicies does for each device
    results = []

    def one_device(n):
        try:
            response = enroll(Client(), organisation, n=n)
            results.append("fault" if b"s:Fault" in response.content or b":Fault" in response.content else "ok")
        finally:
            connection.close()

    threads = [threading.Thread(target=one_device, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count("ok") == 3 and results.count("fault") == 5
    assert package.devices.count() == 3


def test_queries_of_a_package_enrollment_are_fixed(client, organisation, ca_chain, package, django_assert_num_queries):
    """Enrollments per second: with the PIN verification remembered, as for all but a
    package's first device, Discover and GetPolicies make 2 queries and the RST 16 (21 before: the
    organisation is read once per request, the CA once, and a package's device skips its owner's
    device-limit count and first-device check), 17 since an RST sent again after a lost answer is
    looked up, 15 since the package's owner is not locked (its devices count against the package's
    maximum, never the owner's limit) and the two audit events go in one INSERT."""
    parse(enroll(client, organisation, n=1))  # the PIN's one hash, remembered for the cache period
    with django_assert_num_queries(2):
        parse(post(client, service_url(organisation, "discovery"), discover_body()))
    with django_assert_num_queries(2):
        parse(get_policies(client, organisation))
    # 10 (with the package's configuration group joined), two savepoints with their releases, and
    # the look-up of an answered RST sent again (enrollment/rst_retry.py). On PostgreSQL the groups are
    # read and joined by one statement (management/pin_enrollments.py), elsewhere by two.
    with django_assert_num_queries(14 if connection.vendor == "postgresql" else 15):
        parse(enroll(client, organisation, n=2))
    assert package.devices.count() == 2


def policies_from(client, organisation, address, *, pin=PPKG_PIN):
    return client.post(service_url(organisation, "policy"), get_policies_body(UPN, pin),
                       content_type="application/soap+xml; charset=utf-8", secure=True, REMOTE_ADDR=address)


def test_wrong_pins_from_one_address_lock_out_only_that_address(client, organisation, ca_chain, package, settings):
    """The package's user name is predictable: ten wrong PINs from anywhere must not stop every device
    of the organisation from enrolling with it. The PIN's entropy stops guessing; the lockout only
    stops noise, per address."""
    for _ in range(settings.ENROLLMENT_PPKG_FAILURE_LIMIT):
        subcode, _reason, _type = fault_of(policies_from(client, organisation, "198.51.100.7", pin="WRONG-PIN"))
        assert subcode == "s:Authentication"
    # The noisy address is locked out, even with the right PIN...
    subcode, reason, _type = fault_of(policies_from(client, organisation, "198.51.100.7"))
    assert subcode == "s:Authentication" and "locked" in reason
    # ...the organisation's devices, elsewhere, are not.
    assert parse(policies_from(client, organisation, "203.0.113.20")).find("s:Body/s:Fault", NS) is None
    package.refresh_from_db()
    assert not package.is_locked
    locked = AuditEvent.objects.get(action="pin_enrollment.address_locked")
    assert locked.target_id == str(package.pk) and locked.ip == "198.51.100.7"


def test_a_backstop_still_locks_the_package_against_a_spread_out_flood(client, organisation, ca_chain, package,
                                                                       settings):
    settings.ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT = 25
    for n in range(25):
        fault_of(policies_from(client, organisation, f"198.51.100.{n + 1}", pin="WRONG-PIN"))
    subcode, reason, _type = fault_of(policies_from(client, organisation, "203.0.113.20"))
    assert subcode == "s:Authentication" and "locked" in reason
    package.refresh_from_db()
    assert package.is_locked
    alert = AuditEvent.objects.get(action="pin_enrollment.locked")
    assert alert.detail["failures"] == 25 and alert.detail["scope"] == "package"
