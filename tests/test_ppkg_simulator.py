"""End to end: the device simulator enrolls as a provisioning package does, over real HTTP."""
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuthPolicy, Organisation
from simulator import Simulator, SimulatorError, SoapFaultError
from tests.test_simulator import assert_enrolled, enrollment_server  # noqa: F401 (the live server fixture)

UPN = "enroll-lab@example.com"


@pytest.fixture
def package(transactional_db):
    from tests.factories import UserFactory
    from tests.factories_enrollment import PinEnrollmentFactory

    return PinEnrollmentFactory(upn=UPN, owner=UserFactory(email="it-pool@example.com"), max_devices=2)


def test_simulated_package_enrolls_devices_up_to_the_maximum(enrollment_server, package):
    from tests.factories_enrollment import PPKG_PIN

    for _ in range(2):
        result = Simulator(enrollment_server.url, UPN, PPKG_PIN, provisioning_package=True).run()
        assert result.discovery.auth_policy == "OnPremise" and result.enrollment_type == "Full"
        assert_enrolled(result, package.owner, method="ppkg", pin_enrollment=package, upn=UPN, enrollment_type="Full")

    with pytest.raises(SoapFaultError) as error:
        Simulator(enrollment_server.url, UPN, PPKG_PIN, provisioning_package=True).run()
    assert (error.value.subcode, error.value.error_type, error.value.check) == (
        "s:Authorization", "DeviceCapReached", "enroll")
    assert package.devices.count() == 2


def test_simulated_package_enrolls_in_a_federated_organisation(enrollment_server, package, settings):
    from tests.factories_enrollment import PPKG_PIN

    Organisation.objects.update(auth_policy=AuthPolicy.FEDERATED)
    result = Simulator(enrollment_server.url, UPN, PPKG_PIN, provisioning_package=True).run()
    assert [step.name for step in result.steps] == ["probe", "discover", "policies", "keygen", "enroll"]
    assert_enrolled(result, package.owner, method="ppkg")


def test_simulated_package_with_a_wrong_pin_is_refused(enrollment_server, package):
    with pytest.raises(SoapFaultError) as error:
        Simulator(enrollment_server.url, UPN, "WRONG-PIN", provisioning_package=True).run()
    assert (error.value.subcode, error.value.check) == ("s:Authentication", "policies")
    package.refresh_from_db()
    assert package.failed_attempts == 1 and not package.devices.exists()


def test_command_enrolls_with_a_pin(enrollment_server, package, capsys):
    from tests.factories_enrollment import PPKG_PIN

    call_command("simulate_device", enrollment_server.url, "--email", UPN, "--pin", PPKG_PIN, "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["auth_policy"] == "OnPremise" and result["enrollment_type"] == "Full"
    assert package.devices.get().device_id == result["device_id"]


def test_command_refuses_pin_with_options_a_package_cannot_have(db):
    with pytest.raises(CommandError, match="--pin enrolls a PC"):
        call_command("simulate_device", "http://127.0.0.1:9", "--email", UPN, "--pin", "X", "--hololens")
    with pytest.raises(SimulatorError):
        Simulator("http://127.0.0.1:9", UPN, "X", provisioning_package=True, federated=True)


def test_package_requests_offer_only_on_premise_in_the_background():
    from lxml import etree

    simulator = Simulator("http://127.0.0.1:9", UPN, "X", provisioning_package=True)
    discover = etree.tostring(simulator.discover_envelope("urn:uuid:1")).decode()
    assert discover.count("<AuthPolicy>") == 1 and "<AuthPolicy>OnPremise</AuthPolicy>" in discover
    assert ("UXInitiated", "false") in simulator.context_items()
    assert ("EnrollmentType", "Full") in simulator.context_items()
