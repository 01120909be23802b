"""End to end, over real HTTP: devices a provisioning package enrolls count against the package's own
maximum, never against its owner's personal device limit (MS-MDM Provisioning packages: the package
enrolls in the background with its service UPN, not as the owner)."""
import json

import pytest
from django.core.management import call_command

from simulator import Simulator, SoapFaultError
from tests.test_simulator import enrollment_server  # noqa: F401 (the live server fixture)

UPN = "enroll-lab@example.com"


@pytest.fixture
def owner(transactional_db):
    from tests.factories import UserFactory

    return UserFactory(email="it-pool@example.com", device_limit=2)


@pytest.fixture
def package(owner):
    from tests.factories_enrollment import PinEnrollmentFactory

    return PinEnrollmentFactory(upn=UPN, owner=owner, max_devices=3)


def test_package_devices_leave_the_owners_own_device_limit_alone(enrollment_server, owner, package, capsys):
    from enrollment.models import Device
    from tests.factories import PASSWORD
    from tests.factories_enrollment import PPKG_PIN

    for _ in range(2):
        Simulator(enrollment_server.url, UPN, PPKG_PIN, provisioning_package=True).run()
    call_command("simulate_device", enrollment_server.url, "--email", UPN, "--pin", PPKG_PIN, "--json")
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert package.devices.count() == 3

    # The package's own maximum still holds.
    with pytest.raises(SoapFaultError) as error:
        Simulator(enrollment_server.url, UPN, PPKG_PIN, provisioning_package=True).run()
    assert (error.value.subcode, error.value.error_type) == ("s:Authorization", "DeviceCapReached")

    # The owner's own PCs: up to the owner's limit, package devices not counted.
    for _ in range(2):
        result = Simulator(enrollment_server.url, owner.email, PASSWORD).run()
        device = Device.objects.get(device_id=result.device_id)
        assert (device.user, device.method, device.pin_enrollment) == (owner, "onpremise", None)
    with pytest.raises(SoapFaultError) as error:
        Simulator(enrollment_server.url, owner.email, PASSWORD).run()
    assert (error.value.subcode, error.value.error_type) == ("s:Authorization", "DeviceCapReached")
    assert Device.objects.filter(user=owner, pin_enrollment=None).count() == 2
