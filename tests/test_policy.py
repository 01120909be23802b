import pytest

from accounts.models import AuditEvent
from enrollment.soap import GET_POLICIES_RESPONSE, XCEP_NS
from tests.enrollment_soap import fault_of, fixture, get_policies_body, parse, post, service_url
from tests.factories import PASSWORD, RetiredEnrollmentKeyFactory, UserFactory

pytestmark = pytest.mark.django_db

X = {"x": XCEP_NS, "a": "http://www.w3.org/2005/08/addressing", "s": "http://www.w3.org/2003/05/soap-envelope"}


@pytest.fixture
def url(organisation):
    return service_url(organisation, "policy")


def test_get_policies_with_email_and_password_returns_the_policy(client, url, alice):
    root = parse(post(client, url, get_policies_body("alice@example.com", PASSWORD)))
    assert root.findtext("s:Header/a:Action", namespaces=X) == GET_POLICIES_RESPONSE
    assert root.findtext("s:Header/a:RelatesTo", namespaces=X) == "urn:uuid:72048B64-0F19-448F-8C2E-B4C661860AA0"
    response = root.find("s:Body/x:GetPoliciesResponse", X)
    attributes = response.find("x:response/x:policies/x:policy/x:attributes", X)
    assert attributes.findtext("x:privateKeyAttributes/x:minimalKeyLength", namespaces=X) == "2048"
    reference = attributes.findtext("x:hashAlgorithmOIDReference", namespaces=X)
    oid = response.find("x:oIDs/x:oID", X)
    assert oid.findtext("x:oIDReferenceID", namespaces=X) == reference
    assert oid.findtext("x:value", namespaces=X) == "2.16.840.1.101.3.4.2.1"
    assert attributes.findtext("x:certificateValidity/x:validityPeriodSeconds", namespaces=X) == "31536000"


def test_get_policies_accepts_the_mdm_username_in_any_case(client, url):
    UserFactory(email="carol@example.com", mdm_username="CORP\\carol")
    root = parse(post(client, url, get_policies_body("corp\\CAROL", PASSWORD)))
    assert root.find("s:Body/x:GetPoliciesResponse", X) is not None


def test_get_policies_with_wrong_password_is_an_authentication_fault(client, url, alice):
    subcode, reason, _type = fault_of(post(client, url, get_policies_body("alice@example.com", "wrong password")))
    assert subcode == "s:Authentication"
    assert "wrong password" not in reason
    assert AuditEvent.objects.filter(action="enrollment.refused").count() == 1


def test_get_policies_for_unknown_user_is_an_authentication_fault(client, url, alice):
    subcode, _reason, _type = fault_of(post(client, url, get_policies_body("nobody@example.com", PASSWORD)))
    assert subcode == "s:Authentication"


def test_get_policies_for_disabled_user_is_an_authorization_fault(client, url):
    UserFactory(email="dave@example.com", is_active=False)
    subcode, _reason, _type = fault_of(post(client, url, get_policies_body("dave@example.com", PASSWORD)))
    assert subcode == "s:Authorization"


def test_get_policies_for_disabled_user_with_wrong_password_reveals_nothing(client, url):
    UserFactory(email="dave@example.com", is_active=False)
    subcode, _reason, _type = fault_of(post(client, url, get_policies_body("dave@example.com", "nope")))
    assert subcode == "s:Authentication"


def test_get_policies_without_security_header_is_an_authentication_fault(client, url, alice):
    body = get_policies_body("alice@example.com", PASSWORD)
    start, end = body.index(b"<wsse:Security"), body.index(b"</wsse:Security>") + len(b"</wsse:Security>")
    subcode, _reason, _type = fault_of(post(client, url, body[:start] + body[end:]))
    assert subcode == "s:Authentication"


def test_get_policies_with_unreadable_security_header_is_invalid_security(client, url, alice):
    body = get_policies_body("alice@example.com", PASSWORD).replace(b"UsernameToken", b"SomethingElse")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "a:InvalidSecurity"


def test_get_policies_refuses_passwords_when_federated_sign_in_is_chosen(client, url, alice, organisation):
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])
    subcode, _reason, _type = fault_of(post(client, url, get_policies_body("alice@example.com", PASSWORD)))
    assert subcode == "s:Authentication"


def test_repeated_failures_lock_the_account_with_a_soap_fault(client, url, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        post(client, url, get_policies_body("alice@example.com", "wrong password"))
    response = post(client, url, get_policies_body("alice@example.com", PASSWORD))
    subcode, reason, _type = fault_of(response)
    assert subcode == "s:Authentication"
    assert "Too many" in reason


def test_get_policies_body_of_another_message_is_a_message_format_fault(client, url, alice):
    body = get_policies_body("alice@example.com", PASSWORD).replace(b"<GetPolicies ", b"<GetPolicy ") \
        .replace(b"</GetPolicies>", b"</GetPolicy>")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:MessageFormat"


def test_get_policies_with_discovery_action_is_a_message_format_fault(client, url, alice):
    body = get_policies_body("alice@example.com", PASSWORD).replace(
        b"enrollmentpolicy/IPolicy/GetPolicies<", b"enrollmentpolicy/IPolicy/Other<")
    subcode, _reason, _type = fault_of(post(client, url, body))
    assert subcode == "s:MessageFormat"


def test_get_policies_on_retired_key_faults_with_new_invitation_message(client, organisation, alice):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    response = post(client, "/EnrollmentServer/oldkey1234567890/Policy.svc",
                    get_policies_body("alice@example.com", PASSWORD))
    _subcode, reason, _type = fault_of(response)
    assert "new invitation" in reason


def test_get_policies_get_request_is_refused(client, url):
    assert client.get(url, secure=True).status_code == 405


def test_get_policies_password_with_markup_is_escaped_not_parsed(client, url):
    UserFactory(email="erin@example.com", password="p<&>'\" pass")
    body = fixture("get_policies_password.xml", username="erin@example.com", password="p&lt;&amp;&gt;'\" pass")
    root = parse(post(client, url, body.encode()))
    assert root.find("s:Body/x:GetPoliciesResponse", X) is not None
