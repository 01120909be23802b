"""End to end: the simulator enrolls with an Entra ID token over real HTTP (user
and device enrollments; forged tokens refused), terms-of-use page included."""
import base64
import json

import pytest
from cryptography.x509.oid import NameOID
from django.core.management import call_command

from enrollment import entra
import simulator as sim
from simulator import Simulator, SimulatorError, SoapFaultError
from tests import entra_tokens as tokens
from tests.factories_enrollment import TEST_TENANT
from tests.test_simulator import enrollment_server  # noqa: F401  (the live server fixture)


@pytest.fixture
def entra_server(enrollment_server):  # noqa: F811
    from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

    EntraSettingsFactory()
    JwksSetFactory()
    return enrollment_server


def terms_url(server):
    return server.url + "/EnrollmentServer/TermsOfUse"


def subject(result):
    return result.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_simulated_work_account_accepts_the_terms_and_enrolls_with_its_entra_token(entra_server):
    from enrollment.models import Device

    result = Simulator(entra_server.url, None, entra_token=tokens.make_token(), terms_url=terms_url(entra_server)).run()
    assert [step.name for step in result.steps] == ["probe", "discover", "terms", "policies", "keygen", "enroll"]
    assert result.discovery.auth_policy == "Federated" and result.provisioning.store_location == "User"
    device = Device.objects.get(device_id=result.device_id)
    assert (device.method, device.enrollment_type, device.user.email) == ("entra", "Full", tokens.UPN)
    assert subject(result) == result.device_id
    # The OpaqueBlob of the accepted terms came back as EnrollmentData, and it is this user's.
    blob = dict(device.context_items)["EnrollmentData"]
    user = entra.EntraClaims(tenant_id=TEST_TENANT, object_id=tokens.USER_OID, upn="", name="", device_id="")
    assert blob and entra.terms_blob_problem(blob, user) == ""


def test_simulated_entra_join_gets_a_certificate_named_after_the_entra_device_id(entra_server):
    from enrollment.models import Device

    result = Simulator(entra_server.url, None, entra_token=tokens.make_token(), device_enrollment=True,
                       terms_url=terms_url(entra_server)).run()
    assert result.provisioning.store_location == "System"
    assert subject(result) == tokens.DEVICE_GUID
    device = Device.objects.get(device_id=result.device_id)
    assert device.entra_device_id == tokens.DEVICE_GUID and device.enrollment_type == "Device"


def test_simulated_userless_join_enrolls_without_a_user(entra_server):
    from enrollment.models import Device

    token = tokens.make_token(upn=None, unique_name=None, oid="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    result = Simulator(entra_server.url, None, entra_token=token, device_enrollment=True).run()
    assert Device.objects.get(device_id=result.device_id).user is None


def test_simulated_forged_token_is_an_authentication_fault(entra_server):
    from enrollment.models import Device

    with pytest.raises(SoapFaultError) as error:
        Simulator(entra_server.url, None, entra_token=tokens.make_token(key_index=tokens.OTHER_KEY)).run()
    assert (error.value.subcode, error.value.check) == ("s:Authentication", "policies")
    assert not Device.objects.exists()


def test_simulated_terms_page_with_a_forged_token_sends_windows_back_with_an_error(entra_server):
    with pytest.raises(SimulatorError) as error:
        Simulator(entra_server.url, None, entra_token=tokens.unsigned_token(), terms_url=terms_url(entra_server)).run()
    assert error.value.check == "terms-answer" and "unauthorized_client" in error.value.message


def test_simulator_reports_a_server_without_entra(enrollment_server):  # noqa: F811
    with pytest.raises(SimulatorError) as error:
        Simulator(enrollment_server.url, None, entra_token=tokens.make_token()).run()
    assert error.value.check == "discover-auth-policy" and "Entra ID enrollment" in error.value.message


def test_command_enrolls_with_an_entra_token(entra_server, capsys):
    call_command("simulate_device", entra_server.url, "--entra-token", tokens.make_token(), "--device-enrollment",
                 "--entra-terms-url", terms_url(entra_server), "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["auth_policy"] == "Federated"
    assert result["certificate"]["subject"] == f"CN={tokens.DEVICE_GUID}"


def test_entra_requests_carry_the_token_as_a_jwt_binary_security_token():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJkYW5hQGNvbnRvc28uY29tIn0.c2lnbmF0dXJl"
    simulator = Simulator("mdm.example.com", None, entra_token=token)
    security = simulator._security(None)
    binary = security.find(f"{{{sim.WSSE_NS}}}BinarySecurityToken")
    assert binary.get("ValueType") == "urn:ietf:params:oauth:token-type:jwt"
    assert base64.b64decode(binary.text).decode() == token
    assert simulator.email == "dana@contoso.com"  # Discover sends the token's UPN


def test_unreadable_entra_token_is_left_for_the_server_to_refuse():
    assert sim.jwt_claims("not a token") == {} and sim.jwt_claims("a.%%%.c") == {}
    assert Simulator("mdm.example.com", None, entra_token="garbage").email == ""


def test_entra_joined_device_checks_in_with_its_certificate(entra_server):
    from enrollment.models import Device
    from management.models import ManagementSession

    simulator = Simulator(entra_server.url, None, entra_token=tokens.make_token(), device_enrollment=True)
    result = simulator.run()
    session = simulator.checkin(result)
    assert session.auth == "certificate"
    device = Device.objects.get(device_id=result.device_id)
    assert ManagementSession.objects.get(device=device).ended_at is not None
