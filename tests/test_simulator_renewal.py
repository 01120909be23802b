"""End to end over a live server: the simulator enrolls, renews its certificate as Windows' ROBO
renewal does (MS-MDE2 3.5), then checks in with the new certificate."""
import json
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from enrollment import clientcert
from pki import ca
from enrollment.models import Device
from enrollment.provisioning_document import build_document, build_renewal_document
from simulator import (
    Simulator, SimulatorError, SoapFaultError, validate_provisioning_document, validate_renewal_document,
)
from tests.factories import PASSWORD
from tests.factories_enrollment import create_ca_chain, rsa_key
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures)

DEVICE_ID = "1E08C6E95D8BB843B1278FF45BC60CC6"


@pytest.fixture
def renewals_due(settings):
    """Enrollments still advertise the default 60-day window, but the server renews at once: what a
    device sees 10 months after enrolling, without waiting 10 months."""
    def open_window():
        settings.ENROLLMENT_RENEW_PERIOD_DAYS = 400
    return open_window


def test_enrolled_pc_renews_then_checks_in_with_the_new_certificate(enrollment_server, carol, renewals_due):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD)
    result = simulator.run()
    assert result.provisioning.renewal.robo_support and result.provisioning.renewal.renew_period == 60
    renewals_due()

    renewal = simulator.renew(result)

    root, issuing = ca.active_chain()
    renewal.certificate.verify_directly_issued_by(issuing)
    assert renewal.certificate.subject == result.certificate.subject
    assert renewal.certificate.public_key().public_numbers() != result.certificate.public_key().public_numbers()
    device = Device.objects.get(device_id=result.device_id)
    assert device.certificate_serial == ca.serial_hex(renewal.certificate)
    assert device.previous_certificate_serial == ca.serial_hex(result.certificate)
    assert clientcert.device_for_certificate(renewal.certificate) == device

    session = simulator.checkin(renewal.enrollment)

    assert session.auth == "certificate" and session.messages[-1].commands == []
    with pytest.raises(SimulatorError, match="403"):
        simulator.checkin(result)  # the old certificate is retired once the new one was used


def test_device_enrollment_renews_into_the_system_store(enrollment_server, carol, renewals_due):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, device_enrollment=True)
    result = simulator.run()
    renewals_due()

    renewal = simulator.renew(result)

    assert renewal.enrollment.provisioning.store_location == "System"


def test_fresh_certificate_is_not_yet_eligible(enrollment_server, carol):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD)
    result = simulator.run()

    with pytest.raises(SoapFaultError) as refused:
        simulator.renew(result)

    assert (refused.value.subcode, refused.value.error_type) == ("s:Authorization", "NotEligibleToRenew")
    assert Device.objects.get(device_id=result.device_id).certificate_serial == ca.serial_hex(result.certificate)
    assert AuditEvent.objects.filter(action="device.renewal_refused").exists()


def test_simulate_device_renews_and_checks_in(enrollment_server, carol, renewals_due, capsys):
    renewals_due()

    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--renew", "--checkin", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["renewal"]["ok"] and data["checkin"]["ok"]
    assert data["renewal"]["previous_serial"] == data["certificate"]["serial"]
    device = Device.objects.get(device_id=data["device_id"])
    assert device.certificate_thumbprint == data["renewal"]["thumbprint"]
    assert device.previous_certificate_serial == ""  # the check-in used the new certificate


def test_simulate_device_reports_a_refused_renewal(enrollment_server, carol, capsys):
    with pytest.raises(CommandError, match="renewal failed at renew: SOAP fault s:Authorization"):
        call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                     "--renew")


# --- the simulator's own checks of a renewal answer -----------------------------------------------

@pytest.fixture
def enrollment(db):
    """(Provisioning the simulator read at enrollment, the device's current certificate)."""
    create_ca_chain()
    root, issuing = ca.active_chain()
    current = ca.issue_device_certificate(rsa_key(10).public_key(), DEVICE_ID)
    document = build_document(
        root=root, issuing=issuing, device_cert=current, enrollment_type="Full", device_id=DEVICE_ID, upn="",
        device_name="", provider_id="mdmportal", management_url="https://mdm.example.com/ManagementServer/MDM.svc",
        client_secret="c", server_secret="s", renew_period_days=60, retry_interval_days=4)
    provisioning, _tree = validate_provisioning_document(document, public_key=rsa_key(10).public_key(), device_id=DEVICE_ID)
    return provisioning, current


def answer(certificate, **overrides):
    root, issuing = ca.active_chain()
    arguments = dict(root=root, issuing=issuing, device_cert=certificate, enrollment_type="Full", provider_id="mdmportal")
    arguments.update(overrides)
    return build_renewal_document(**arguments)


def test_simulator_accepts_a_proper_renewal_answer(enrollment):
    provisioning, current = enrollment
    assert provisioning.renewal.retry_interval == 4
    new = ca.issue_device_certificate(rsa_key(21).public_key(), DEVICE_ID)

    got = validate_renewal_document(answer(new), public_key=rsa_key(21).public_key(), previous=current,
                                    provisioning=provisioning)

    assert got == new


@pytest.mark.parametrize("case, check", [
    ("old key", "provisioning-client-key"),
    ("other subject", "provisioning-client-subject"),
    ("other provider", "renewal-provider-id"),
    ("system store", "renewal-certificate-store"),
    ("full document", "renewal-document"),
])
def test_simulator_refuses_a_wrong_renewal_answer(enrollment, case, check):
    provisioning, current = enrollment
    key = rsa_key(10 if case == "old key" else 21)
    new = ca.issue_device_certificate(key.public_key(), "ANOTHER" if case == "other subject" else DEVICE_ID)
    document = {
        "other provider": lambda: answer(new, provider_id="someone-else"),
        "system store": lambda: answer(new, enrollment_type="Device"),
        "full document": lambda: build_document(
            root=provisioning.root, issuing=provisioning.issuing, device_cert=new, enrollment_type="Full",
            device_id=DEVICE_ID, upn="", device_name="", provider_id="mdmportal",
            management_url="https://mdm.example.com/x", client_secret="c", server_secret="s",
            renew_period_days=60, retry_interval_days=4),
    }.get(case, lambda: answer(new))()

    with pytest.raises(SimulatorError) as refused:
        validate_renewal_document(document, public_key=rsa_key(21).public_key(), previous=current,
                                  provisioning=provisioning)

    assert refused.value.check == check


def test_simulator_refuses_a_renewal_schedule_windows_would_reject(enrollment):
    _provisioning, current = enrollment
    root, issuing = ca.active_chain()
    document = build_document(
        root=root, issuing=issuing, device_cert=current, enrollment_type="Full", device_id=DEVICE_ID, upn="",
        device_name="", provider_id="mdmportal", management_url="https://mdm.example.com/ManagementServer/MDM.svc",
        client_secret="c", server_secret="s", renew_period_days=60, retry_interval_days=4,
    ).replace(b'name="RetryInterval" value="4"', b'name="RetryInterval" value="61"')

    with pytest.raises(SimulatorError, match="RetryInterval 61 exceeds RenewPeriod 60"):
        validate_provisioning_document(document, public_key=rsa_key(10).public_key(), device_id=DEVICE_ID)


def test_renew_needs_a_server_that_offers_robo(enrollment):
    provisioning, current = enrollment
    simulator = Simulator("http://127.0.0.1:9", "carol@example.com", PASSWORD)
    result = type("Result", (), {"provisioning": replace(provisioning, renewal=None)})()

    with pytest.raises(SimulatorError, match="renew-not-offered"):
        simulator.renew(result)
