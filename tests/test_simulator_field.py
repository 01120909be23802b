"""End to end over a live server: what Windows devices in the field do that a fresh lab PC does not.
Each behaviour is a switch of the simulator (and of `manage.py simulate_device`):

- the organisation's enrollment URL is regenerated while enrolled devices renew (--pause-before-renew);
- the device's clock is hours off (--clock-skew-hours);
- the device sends the very same RequestSecurityToken again after losing the answer (--retry-rst);
- the device tries WBXML first for OMA-DM (--wbxml).
"""
import json

import pytest
from django.core.management import call_command

from accounts.models import AuditEvent, AuthPolicy, Organisation
from pki import ca
from enrollment.models import Device
from invitations.sending import regenerate_enrollment_url
from simulator import Simulator, SimulatorError
from tests import entra_tokens as tokens
from tests.factories import PASSWORD
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures)

PPKG_UPN = "enroll-lab@example.com"


@pytest.fixture
def renewals_due(settings):
    """The server renews at once: what a device sees months after enrolling."""
    def open_window():
        settings.ENROLLMENT_RENEW_PERIOD_DAYS = 400
    return open_window


# --- the enrollment URL regenerated while devices renew --------------------------------------------

class RegenerateOnEnter:
    """The stdin of `simulate_device --pause-before-renew`: pressing Enter once an administrator has
    regenerated the enrollment URL (Organisation -> Regenerate enrollment URL)."""

    def __init__(self):
        self.old_key = Organisation.get().enrollment_key

    def readline(self):
        regenerate_enrollment_url(Organisation.get())
        return "\n"


def test_device_enrolled_before_the_url_is_regenerated_renews_and_checks_in(enrollment_server, carol, renewals_due,
                                                                            capsys):
    renewals_due()
    stdin = RegenerateOnEnter()

    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--pause-before-renew", "--renew", "--checkin", "--json", stdin=stdin)

    data = json.loads(capsys.readouterr().out)
    assert Organisation.get().enrollment_key != stdin.old_key  # the URL the device enrolled through is retired
    assert f"/{stdin.old_key}/" in data["enrollment_url"]
    assert data["renewal"]["ok"] and data["checkin"]["ok"]
    device = Device.objects.get(device_id=data["device_id"])
    assert device.certificate_thumbprint == data["renewal"]["thumbprint"]
    assert device.last_seen_at is not None


def test_new_enrollment_through_the_regenerated_url_is_refused(enrollment_server, carol):
    result = Simulator(enrollment_server.url, "carol@example.com", PASSWORD).run()
    regenerate_enrollment_url(Organisation.get())

    old_url = result.discovery.enrollment_url.replace("Enrollment.svc", "Discovery.svc")
    with pytest.raises(SimulatorError) as refused:
        Simulator(old_url, "carol@example.com", PASSWORD).run()

    assert refused.value.check == "probe" and "410" in refused.value.message  # Gone: ask for a new invitation


# --- a device whose clock is hours off --------------------------------------------------------------

@pytest.mark.parametrize("hours", [-5, 5, -13])
def test_device_with_its_clock_hours_off_enrolls_renews_and_checks_in(enrollment_server, carol, renewals_due, hours):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, clock_skew_hours=hours)

    result = simulator.run()
    simulator.checkin(result)
    renewals_due()
    renewal = simulator.renew(result)
    session = simulator.checkin(renewal.enrollment)

    assert session.auth == "certificate"
    assert Device.objects.get(device_id=result.device_id).last_seen_at is not None


def test_simulate_device_takes_a_clock_skew(enrollment_server, carol, capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--clock-skew-hours", "-5", "--checkin", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["checkin"]["ok"]


# --- the same RST sent again after a lost answer ----------------------------------------------------

def assert_one_device_answered_twice(result):
    devices = Device.objects.filter(device_id=result.device_id)
    assert devices.count() == 1, list(devices.values("pk", "status"))
    device = devices.get()
    assert device.status == Device.Status.ENROLLED
    assert device.certificate_serial == ca.serial_hex(result.certificate)  # the answer the device kept
    assert AuditEvent.objects.filter(action="enrollment.retried", target_id=str(device.pk)).count() == 1
    assert not AuditEvent.objects.filter(action="enrollment.refused").exists()
    return device


def test_retried_rst_with_a_password_gets_the_same_enrollment(enrollment_server, carol):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, retry_rst=True)

    result = simulator.run()

    assert_one_device_answered_twice(result)
    assert simulator.checkin(result).auth == "certificate"


def test_retried_rst_with_a_federated_token_gets_the_same_enrollment(enrollment_server, carol):
    Organisation.objects.update(auth_policy=AuthPolicy.FEDERATED)
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, federated=True, retry_rst=True)

    result = simulator.run()

    assert_one_device_answered_twice(result)
    assert simulator.checkin(result).auth == "certificate"


def test_retried_rst_of_a_provisioning_package_takes_one_slot(enrollment_server):
    from tests.factories import UserFactory
    from tests.factories_enrollment import PPKG_PIN, PinEnrollmentFactory

    package = PinEnrollmentFactory(upn=PPKG_UPN, owner=UserFactory(email="it-pool@example.com"), max_devices=1)
    simulator = Simulator(enrollment_server.url, PPKG_UPN, PPKG_PIN, provisioning_package=True, retry_rst=True)

    result = simulator.run()

    assert_one_device_answered_twice(result)
    assert package.devices.count() == 1
    assert simulator.checkin(result).auth == "certificate"


def test_retried_rst_with_an_entra_token_does_not_spend_it_twice(enrollment_server):
    from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

    EntraSettingsFactory()
    JwksSetFactory()
    simulator = Simulator(enrollment_server.url, None, entra_token=tokens.make_token(), device_enrollment=True,
                          retry_rst=True)

    result = simulator.run()

    assert_one_device_answered_twice(result)
    assert simulator.checkin(result).auth == "certificate"


def test_a_retried_rst_does_not_let_another_device_use_the_spent_entra_token(enrollment_server):
    from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

    EntraSettingsFactory()
    JwksSetFactory()
    token = tokens.make_token()
    Simulator(enrollment_server.url, None, entra_token=token, device_enrollment=True, retry_rst=True).run()

    with pytest.raises(SimulatorError) as refused:  # another PC, so another RST: the token is spent
        Simulator(enrollment_server.url, None, entra_token=token, device_enrollment=True).run()

    assert refused.value.check == "enroll"
    assert Device.objects.count() == 1


def test_simulate_device_retries_the_rst(enrollment_server, carol, capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--retry-rst", "--checkin", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["checkin"]["ok"]
    assert Device.objects.filter(device_id=data["device_id"]).count() == 1


# --- WBXML --------------------------------------------------------------------------------------------

def test_wbxml_message_gets_415_naming_xml_and_the_device_falls_back(enrollment_server, carol):
    simulator = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, wbxml=True)
    result = simulator.run()

    session = simulator.checkin(result)

    assert session.wbxml_refused == "application/vnd.syncml.dm+xml"
    assert session.auth == "certificate" and session.messages[-1].commands == []
    assert Device.objects.get(device_id=result.device_id).last_seen_at is not None


def test_simulate_device_tries_wbxml_first(enrollment_server, carol, capsys):
    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD,
                 "--wbxml", "--checkin", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["checkin"]["ok"] and data["checkin"]["wbxml_refused"] == "application/vnd.syncml.dm+xml"
