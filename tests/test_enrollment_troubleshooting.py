"""Enrollment troubleshooting, end to end: real refusals provoked over HTTP on the SOAP endpoints
(discovery, GetPolicies, the enrollment request), then the console's pages for the user, the device
and everyone show each attempt with the code Windows showed, the cause and what to do."""
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent, RegistrationMode
from enrollment import troubleshooting
from enrollment.soap import ErrorType, Fault
from tests.enrollment_soap import (
    DEVICE_ID, discover_body, fault_of, get_policies_body, password_security, post, rst_body, service_url, windows_csr,
)
from tests.factories import PASSWORD, RetiredEnrollmentKeyFactory, UserFactory, UserGroupFactory
from tests.factories_enrollment import DeviceFactory, create_ca_chain, rsa_key
from tests.test_simulator import carol, enrollment_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

OTHER_DEVICE = "0F0E0D0C0B0A09080706050403020100"


@pytest.fixture
def device_client():
    return Client(REMOTE_ADDR="198.51.100.20")


def enroll(client, organisation, email, password=PASSWORD, *, key_url=None, device_id=DEVICE_ID):
    csr = windows_csr(rsa_key(61), device_id)
    url = key_url or service_url(organisation, "enrollment")
    return post(client, url, rst_body(password_security(email, password), csr, device_id=device_id))


def user_page(console, user):
    return console.get(reverse("admin:enrollment_user_troubleshooting", args=[user.pk]))


def attempt_blocks(response):
    html = response.content.decode()
    return [block.split("</div>")[0] for block in html.split('class="module attempt"')[1:]]


def test_the_windows_codes_come_from_the_fault_and_its_error_type():
    assert troubleshooting.windows_code(Fault.AUTHENTICATION) == "0x80180002"
    assert troubleshooting.windows_code(Fault.AUTHORIZATION) == "0x80180003"
    assert troubleshooting.windows_code(Fault.ENROLLMENT_SERVER) == "0x80180005"
    assert troubleshooting.windows_code(Fault.AUTHORIZATION, ErrorType.DEVICE_CAP_REACHED) == "0x80180013"
    assert troubleshooting.windows_code(Fault.AUTHORIZATION, ErrorType.DEVICE_NOT_SUPPORTED) == "0x80180014"
    assert troubleshooting.windows_code(Fault.AUTHORIZATION, ErrorType.USER_LICENSE) == "0x80180018"
    # An ErrorType with no code of its own leaves the subcode's.
    assert troubleshooting.windows_code(Fault.AUTHORIZATION, ErrorType.CUSTOM_SERVER_ERROR) == "0x80180003"


def test_refusals_over_http_show_on_the_users_page_with_code_cause_and_advice(console, organisation, device_client):
    create_ca_chain()
    alice = UserFactory(email="alice@example.com", device_limit=1)
    DeviceFactory(user=alice, device_id=OTHER_DEVICE)

    # 1. A wrong password at GetPolicies.
    subcode, _, _ = fault_of(post(device_client, service_url(organisation, "policy"),
                                  get_policies_body("alice@example.com", "wrong password")))
    assert subcode == Fault.AUTHENTICATION
    # 2. The right password, but the device limit is reached (a plain audit event: she signed in).
    _, _, error_type = fault_of(enroll(device_client, organisation, "Alice@Example.com"))
    assert error_type == ErrorType.DEVICE_CAP_REACHED
    # 3. An old enrollment address (the URL was regenerated).
    retired = RetiredEnrollmentKeyFactory(key="old-key-0001")
    old_url = reverse("enrollment:enrollment", kwargs={"key": retired.key})
    assert fault_of(enroll(device_client, organisation, "alice@example.com", key_url=old_url))[0] == Fault.AUTHORIZATION

    response = user_page(console, alice)

    assert response.status_code == 200
    newest, middle, oldest = attempt_blocks(response)
    assert "0x80180003" in newest and "old enrollment address" in newest and "new invitation" in newest
    assert "0x80180013" in middle and "device limit" in middle and "Raise the device limit" in middle
    assert DEVICE_ID in middle
    assert "0x80180002" in oldest and "Wrong user name or password" in oldest and "password reset" in oldest
    assert "198.51.100.20" in oldest and "Trace id" in oldest
    assert "Certificate policies (GetPolicies)" in oldest and "Certificate request (RequestSecurityToken)" in newest
    events = AuditEvent.objects.filter(action="enrollment.refused").order_by("pk")
    assert [e.detail["step"] for e in events] == ["policy", "enrollment", "enrollment"]
    assert [e.target_id for e in events] == [str(alice.pk)] * 3
    # The trace id recorded is the TraceId Windows got in the fault.
    assert all(len(e.detail["trace_id"]) == 36 for e in events)


def test_a_deactivated_account_and_a_wrong_pin_are_explained(console, organisation, device_client):
    create_ca_chain()
    gone = UserFactory(email="gone@example.com", is_active=False)
    pin_user = UserFactory(email="pin@example.com")
    UserGroupFactory(registration_mode=RegistrationMode.PIN).members.add(pin_user)

    assert fault_of(enroll(device_client, organisation, "gone@example.com"))[0] == Fault.AUTHORIZATION
    assert fault_of(enroll(device_client, organisation, "pin@example.com", "00000000"))[0] == Fault.AUTHENTICATION

    gone_page = user_page(console, gone).content.decode()
    assert "0x80180003" in gone_page and "The account is deactivated." in gone_page
    assert "Reactivate the account" in gone_page
    pin_page = user_page(console, pin_user).content.decode()
    assert "0x80180002" in pin_page and "registration PIN is wrong, has expired" in pin_page
    assert "requests a new PIN" in pin_page


def test_discovery_refusal_is_recorded_with_the_email_it_names(console, organisation, device_client):
    both = UserFactory(email="both@example.com")
    UserGroupFactory(registration_mode=RegistrationMode.PIN_AND_PASSWORD).members.add(both)
    body = discover_body(policies=("OnPremise",)).replace(b"alice@example.com", b"both@example.com")
    assert b"both@example.com" in body

    subcode, _, error_type = fault_of(post(device_client, service_url(organisation, "discovery"), body))

    assert (subcode, error_type) == (Fault.AUTHORIZATION, ErrorType.NOT_SUPPORTED)
    block, = attempt_blocks(user_page(console, both))
    assert "0x80180015" in block and "Discovery (Discover)" in block
    assert "did not offer the sign-in method" in block


def test_device_page_shows_the_refused_attempts_naming_its_device_id(console, organisation, device_client):
    create_ca_chain()
    alice = UserFactory(email="alice@example.com")
    device = DeviceFactory(user=alice, device_id=DEVICE_ID)
    UserFactory(email="bob@example.com")

    # Bob's enrollment names Alice's device: the take-over is refused.
    assert fault_of(enroll(device_client, organisation, "bob@example.com"))[0] == Fault.AUTHORIZATION
    # An enrollment of another device is not this device's.
    enroll(device_client, organisation, "nobody@example.com", device_id=OTHER_DEVICE)

    change = console.get(reverse("admin:enrollment_device_change", args=[device.pk])).content.decode()
    assert reverse("admin:enrollment_device_troubleshooting", args=[device.pk]) in change
    response = console.get(reverse("admin:enrollment_device_troubleshooting", args=[device.pk]))

    blocks = attempt_blocks(response)
    assert blocks and all(OTHER_DEVICE not in block for block in blocks)
    assert all("0x80180003" in block for block in blocks)
    assert any("enrolled by another user" in block and "release it for re-enrollment" in block for block in blocks)


def test_refusals_of_unknown_accounts_are_listed_for_everyone_and_counted_on_the_dashboard(
        console, organisation, device_client):
    for _ in range(3):
        post(device_client, service_url(organisation, "policy"), get_policies_body("nobody@example.com", "x"))

    event = AuditEvent.objects.get(action="enrollment.refused")
    assert event.count == 3 and event.target_id == "" and event.detail["account"] == "nobody@example.com"
    page = console.get(reverse("admin:enrollment_troubleshooting")).content.decode()
    assert "nobody@example.com" in page and "3 times" in page and "0x80180002" in page
    dashboard = console.get(reverse("admin:index")).content.decode()
    assert reverse("admin:enrollment_troubleshooting") in dashboard
    assert 'id="card-refused-enrollments"' in dashboard


def test_troubleshooting_pages_cost_the_same_queries_for_2_or_20_attempts(console, organisation):
    alice = UserFactory(email="alice@example.com")
    device = DeviceFactory(user=alice)

    def queries(count):
        for n in range(count):
            AuditEvent.record(None, "enrollment.refused", alice, detail={
                "step": "enrollment", "fault": Fault.AUTHENTICATION, "message": "x", "reason": f"r{n}",
                "device_id": device.device_id, "code": "0x80180002"})
        with CaptureQueriesContext(connection) as captured:
            assert user_page(console, alice).status_code == 200
            assert console.get(reverse("admin:enrollment_device_troubleshooting", args=[device.pk])).status_code == 200
        return len(captured)

    assert queries(2) == queries(18)


def test_helpdesk_reads_the_pages_and_users_without_console_access_do_not(client, helpdesk, alice, organisation):
    client.force_login(helpdesk)
    assert user_page(client, alice).status_code == 200
    client.force_login(alice)
    assert user_page(client, alice).status_code == 302


# The device simulator against a live server: what a real Windows client would be told, and what the
# helpdesk then reads.

def test_simulated_windows_refusals_show_with_the_code_the_device_got(enrollment_server, carol,  # noqa: F811
                                                                     admin_user):
    from simulator import Simulator, SoapFaultError

    with pytest.raises(SoapFaultError) as wrong_password:
        Simulator(enrollment_server.url, "carol@example.com", "not her password").run()
    carol.device_limit = 0
    carol.save()
    with pytest.raises(SoapFaultError) as over_limit:
        Simulator(enrollment_server.url, "carol@example.com", PASSWORD).run()

    assert wrong_password.value.subcode == Fault.AUTHENTICATION
    assert over_limit.value.error_type == ErrorType.DEVICE_CAP_REACHED
    console = Client()
    console.force_login(admin_user)
    newest, oldest = attempt_blocks(user_page(console, carol))
    assert "0x80180013" in newest and "device limit" in newest
    assert "0x80180002" in oldest and "Wrong user name or password" in oldest
    # The trace id the helpdesk reads is the TraceId Windows was given.
    event = AuditEvent.objects.filter(action="enrollment.refused").latest("pk")
    assert event.detail["step"] == "enrollment" and event.detail["device_id"]


def test_a_refused_entra_token_shows_on_the_page_of_the_user_it_names(console, organisation, device_client):
    from tests import entra_tokens as tokens
    from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

    create_ca_chain()
    EntraSettingsFactory()
    JwksSetFactory()
    dana = UserFactory(email=tokens.UPN)
    other_tenant = "0b0c0d0e-1111-4222-8333-944445555666"
    token = tokens.make_token(tid=other_tenant, iss=f"https://sts.windows.net/{other_tenant}/")

    assert fault_of(tokens.enroll(device_client, organisation, token))[0] == Fault.AUTHENTICATION

    block, = attempt_blocks(user_page(console, dana))
    assert "0x80180002" in block and "Microsoft Entra ID sign-in was not accepted" in block
    assert token not in block and token.split(".")[1][:40] not in block


def test_a_refused_sign_in_on_the_federated_page_shows_on_the_users_page(console, organisation, device_client):
    from tests.factories import OrganisationFactory

    OrganisationFactory(federated=True)
    erin = UserFactory(email="erin@example.com")
    url = reverse("enrollment:signin", kwargs={"key": organisation.enrollment_key})
    appru = "ms-app://windows.immersivecontrolpanel"

    response = device_client.post(url, {"appru": appru, "username": "erin@example.com", "password": "wrong"})

    assert response.status_code == 200
    block, = attempt_blocks(user_page(console, erin))
    assert "Refused on the organisation&#x27;s sign-in page" in block


def test_a_lockout_shows_on_the_users_page_with_the_refusals_that_caused_it(console, organisation, device_client,
                                                                            settings):
    settings.AXES_FAILURE_LIMIT = 3
    frank = UserFactory(email="frank@example.com")
    for n in range(4):
        post(device_client, service_url(organisation, "policy"), get_policies_body("frank@example.com", f"wrong{n}"))

    response = user_page(console, frank)

    html = response.content.decode()
    assert 'id="lockout"' in html and "every enrollment is refused until then" in html
    blocks = attempt_blocks(response)
    assert any("Too many failed sign-ins" in block and "Lockouts page" in block for block in blocks)
    assert any("Wrong user name or password" in block for block in blocks)
