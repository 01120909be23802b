"""End to end, over real HTTP: what Windows fleets do with Entra ID enrollment that a tidy client does
not. Windows sends the EnrollmentData context item as the literal string null (or empty) when no
terms-of-use blob came back (MS-MDE2 AdditionalContext; Microsoft's "Terms of Use protocol
semantics"); and Windows' Settings offers OnPremise and Federated in every Discover (MS-MDE2
AuthPolicies), so discovery must decide by the EmailAddress which one a person gets."""
import json

import pytest
from django.core.management import call_command

from simulator import Simulator, SimulatorError, SoapFaultError
from tests import entra_tokens as tokens
from tests.test_simulator import enrollment_server  # noqa: F401  (the live server fixture)
from tests.test_simulator_entra import entra_server, terms_url  # noqa: F401

ENTRA_DOMAIN = tokens.UPN.split("@")[1]  # contoso.com


def set_entra_domains(*domains):
    from enrollment.models import EntraSettings

    row = EntraSettings.get()
    row.domains = list(domains)
    row.save()


# --- EnrollmentData: "null", empty or absent mean "no terms-of-use blob" -------------------------------

@pytest.mark.parametrize("enrollment_data", ["null", "empty", "absent"])
def test_entra_enrollment_without_a_terms_blob_enrolls(entra_server, enrollment_data):
    from enrollment.models import Device

    result = Simulator(entra_server.url, None, entra_token=tokens.make_token(),
                       entra_enrollment_data=enrollment_data).run()
    assert [step.name for step in result.steps] == ["probe", "discover", "policies", "keygen", "enroll"]
    device = Device.objects.get(device_id=result.device_id)
    assert (device.method, device.user.email) == ("entra", tokens.UPN)


def test_entra_join_sending_null_enrolls(entra_server):
    from enrollment.models import Device

    result = Simulator(entra_server.url, None, entra_token=tokens.make_token(), device_enrollment=True,
                       entra_enrollment_data="null").run()
    assert Device.objects.get(device_id=result.device_id).entra_device_id == tokens.DEVICE_GUID


def test_command_sends_null_enrollment_data(entra_server, capsys):
    call_command("simulate_device", entra_server.url, "--entra-token", tokens.make_token(),
                 "--entra-enrollment-data", "null", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["auth_policy"] == "Federated"


def test_a_blob_from_the_terms_page_is_still_verified(entra_server):
    from enrollment.models import Device

    simulator = Simulator(entra_server.url, None, entra_token=tokens.make_token(), terms_url=terms_url(entra_server))

    def forged_terms():
        simulator.enrollment_data = "forged-blob"
        return simulator.enrollment_data, "forged"

    simulator.accept_terms = forged_terms
    with pytest.raises(SoapFaultError) as error:
        simulator.run()
    assert (error.value.subcode, error.value.check) == ("s:Authentication", "enroll")
    assert not Device.objects.exists()


def test_simulator_enrollment_data_needs_a_terms_url_only_for_the_blob():
    with pytest.raises(SimulatorError):
        Simulator("mdm.example.com", None, entra_token="t", entra_enrollment_data="blob")
    with pytest.raises(SimulatorError):
        Simulator("mdm.example.com", None, entra_token="t", terms_url="https://x/t", entra_enrollment_data="null")
    items = dict(Simulator("mdm.example.com", None, entra_token="t", entra_enrollment_data="empty").context_items())
    assert items["EnrollmentData"] == ""
    assert "EnrollmentData" not in dict(Simulator("mdm.example.com", None, entra_token="t").context_items())


# --- discovery: Entra on, local users keep their own sign-in ------------------------------------------

@pytest.fixture
def local_user(transactional_db):
    from tests.factories import UserFactory

    return UserFactory(email="carol@example.com")


def test_local_user_keeps_the_windows_password_box_while_entra_is_on(entra_server, local_user):
    from enrollment.models import Device
    from tests.factories import PASSWORD

    set_entra_domains(ENTRA_DOMAIN)
    result = Simulator(entra_server.url, local_user.email, PASSWORD, follow_auth_policy=True).run()
    assert result.discovery.auth_policy == "OnPremise"
    assert [step.name for step in result.steps] == ["probe", "discover", "policies", "keygen", "enroll"]
    device = Device.objects.get(device_id=result.device_id)
    assert (device.method, device.user) == ("onpremise", local_user)


def test_address_of_the_tenants_domain_gets_federated(entra_server):
    from enrollment.models import Device

    set_entra_domains("Contoso.COM")
    # The domain is matched whatever its case, in the settings and in the address Windows sends.
    result = Simulator(entra_server.url, tokens.UPN.upper(), entra_token=tokens.make_token()).run()
    assert result.discovery.auth_policy == "Federated"
    assert Device.objects.get(device_id=result.device_id).method == "entra"


def test_command_follows_the_servers_choice(entra_server, local_user, capsys):
    from tests.factories import PASSWORD

    set_entra_domains(ENTRA_DOMAIN)
    call_command("simulate_device", entra_server.url, "--email", local_user.email, "--password", PASSWORD,
                 "--follow-auth-policy", "--json")
    assert json.loads(capsys.readouterr().out)["auth_policy"] == "OnPremise"
