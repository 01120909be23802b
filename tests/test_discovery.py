import pytest
from django.urls import reverse

from enrollment.soap import DISCOVER_RESPONSE, DISCOVERY_NS
from tests.enrollment_soap import NS, discover_body, fault_of, fixture, parse, post
from tests.factories import RetiredEnrollmentKeyFactory

pytestmark = pytest.mark.django_db

AUTODISCOVERY = "/EnrollmentServer/Discovery.svc"


def result(response):
    root = parse(response)
    return root, root.find("s:Body/d:DiscoverResponse/d:DiscoverResult", NS)


def federate(organisation):
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])


def test_probe_answers_empty_200_without_redirect(client, organisation):
    response = client.get(AUTODISCOVERY, secure=True)
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == "0"


@pytest.mark.parametrize("path", ["/enrollmentserver/discovery.svc", "/ENROLLMENTSERVER/DISCOVERY.SVC"])
def test_probe_path_is_case_insensitive(client, organisation, path):
    response = client.get(path, secure=True)
    assert response.status_code == 200
    assert response["Content-Length"] == "0"


def test_versioned_probe_answers_for_current_key(client, organisation):
    response = client.get(organisation.enrollment_url.split(".com", 1)[1], secure=True)
    assert response.status_code == 200
    assert response.content == b""


def test_probe_with_retired_key_tells_user_to_ask_for_a_new_invitation(client, organisation):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    response = client.get("/EnrollmentServer/oldkey1234567890/Discovery.svc", secure=True)
    assert response.status_code == 410
    assert b"new invitation" in response.content


def test_probe_with_unknown_key_is_404(client, organisation):
    assert client.get("/EnrollmentServer/nosuchkey/Discovery.svc", secure=True).status_code == 404


@pytest.mark.parametrize("namespace", [DISCOVERY_NS, DISCOVERY_NS + "/"])
@pytest.mark.parametrize("requested, answered", [("4.0", "4.0"), ("5.0", "4.0"), ("9.0", "4.0"), ("3.0", "3.0")])
def test_discover_answers_onpremise_with_capped_version(client, organisation, namespace, requested, answered):
    response = post(client, AUTODISCOVERY, discover_body(namespace=namespace, version=requested,
                                                          policies=("OnPremise", "Federated")))
    root, discover_result = result(response)
    assert root.findtext("s:Header/a:Action", namespaces=NS) == DISCOVER_RESPONSE
    assert root.findtext("s:Header/a:RelatesTo", namespaces=NS) == \
        "urn:uuid:748132ec-a575-4329-b01b-6171a9cf8478"
    activity = root.find("s:Header/diag:ActivityId", NS)
    assert activity.text == activity.get("CorrelationId")
    assert discover_result.findtext("d:AuthPolicy", namespaces=NS) == "OnPremise"
    assert discover_result.findtext("d:EnrollmentVersion", namespaces=NS) == answered
    key = organisation.enrollment_key
    assert discover_result.findtext("d:EnrollmentPolicyServiceUrl", namespaces=NS) == \
        f"https://enterpriseenrollment.contoso.com/EnrollmentServer/{key}/Policy.svc"
    assert discover_result.findtext("d:EnrollmentServiceUrl", namespaces=NS) == \
        f"https://enterpriseenrollment.contoso.com/EnrollmentServer/{key}/Enrollment.svc"
    assert discover_result.find("d:AuthenticationServiceUrl", NS) is None


def test_discover_version_follows_setting(client, organisation, settings):
    settings.ENROLLMENT_MAX_VERSION = "5.0"
    _root, discover_result = result(post(client, AUTODISCOVERY, discover_body(version="9.0")))
    assert discover_result.findtext("d:EnrollmentVersion", namespaces=NS) == "5.0"


def test_discover_accepts_policy_written_directly_in_authpolicies(client, organisation):
    response = post(client, "/enrollmentserver/discovery.svc", fixture("discover_policy_as_text.xml").encode())
    _root, discover_result = result(response)
    assert discover_result.findtext("d:AuthPolicy", namespaces=NS) == "OnPremise"


def test_discover_on_versioned_url_keeps_that_key(client, organisation):
    url = reverse("enrollment:discovery", kwargs={"key": organisation.enrollment_key})
    _root, discover_result = result(post(client, url, discover_body()))
    assert organisation.enrollment_key in discover_result.findtext("d:EnrollmentServiceUrl", namespaces=NS)


def test_discover_answers_federated_with_sign_in_url_when_chosen(client, organisation):
    federate(organisation)
    _root, discover_result = result(post(client, AUTODISCOVERY, discover_body(policies=("OnPremise", "Federated"))))
    assert discover_result.findtext("d:AuthPolicy", namespaces=NS) == "Federated"
    assert discover_result.findtext("d:AuthenticationServiceUrl", namespaces=NS) == \
        f"https://enterpriseenrollment.contoso.com/EnrollmentServer/{organisation.enrollment_key}/SignIn"


def test_discover_faults_when_our_policy_was_not_offered(client, organisation):
    federate(organisation)
    subcode, reason, error_type = fault_of(post(client, AUTODISCOVERY, discover_body(policies=("OnPremise",))))
    assert subcode == "s:Authorization"
    assert error_type == "NotSupported"
    assert "Federated" in reason


def test_discover_faults_for_certificate_only_client(client, organisation):
    subcode, _reason, _type = fault_of(post(client, AUTODISCOVERY, discover_body(policies=("Certificate",))))
    assert subcode == "s:Authorization"


def test_discover_on_retired_key_faults_with_new_invitation_message(client, organisation):
    RetiredEnrollmentKeyFactory(key="oldkey1234567890")
    response = post(client, "/EnrollmentServer/oldkey1234567890/Discovery.svc", discover_body())
    subcode, reason, error_type = fault_of(response)
    assert subcode == "s:Authorization"
    assert "new invitation" in reason
    assert error_type == "CustomServerError"
    root = parse(response)
    assert root.findtext("s:Header/a:RelatesTo", namespaces=NS) == \
        "urn:uuid:748132ec-a575-4329-b01b-6171a9cf8478"


def test_discover_with_garbage_version_is_a_message_format_fault(client, organisation):
    subcode, _reason, _type = fault_of(post(client, AUTODISCOVERY, discover_body(version="four")))
    assert subcode == "s:MessageFormat"


@pytest.mark.parametrize("body", [
    b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body>",
    b"not xml at all",
    b"",
    b"<root/>",
])
def test_malformed_requests_get_message_format_fault(client, organisation, body):
    subcode, _reason, _type = fault_of(post(client, AUTODISCOVERY, body))
    assert subcode == "s:MessageFormat"


@pytest.mark.parametrize("name", ["xxe.xml", "billion_laughs.xml"])
def test_doctype_and_entities_are_refused(client, organisation, name):
    response = post(client, AUTODISCOVERY, fixture(name).encode())
    subcode, _reason, _type = fault_of(response)
    assert subcode == "s:MessageFormat"
    assert b"root:" not in response.content and b"lollol" not in response.content


def test_body_over_two_mebibytes_is_413(client, organisation):
    body = discover_body().replace(b"<s:Body>", b"<s:Body><!--" + b"x" * (2 * 1024 * 1024) + b"-->")
    response = post(client, AUTODISCOVERY, body)
    assert response.status_code == 413


def test_wrong_action_is_a_message_format_fault(client, organisation):
    body = discover_body().replace(b"IDiscoveryService/Discover<", b"IDiscoveryService/Nope<")
    subcode, _reason, _type = fault_of(post(client, AUTODISCOVERY, body))
    assert subcode == "s:MessageFormat"


def test_discovery_is_csrf_exempt(organisation):
    from django.test import Client

    response = post(Client(enforce_csrf_checks=True), AUTODISCOVERY, discover_body())
    assert response.status_code == 200


def test_soap_11_envelope_is_accepted(client, organisation):
    body = discover_body().replace(b"http://www.w3.org/2003/05/soap-envelope",
                                   b"http://schemas.xmlsoap.org/soap/envelope/")
    _root, discover_result = result(post(client, AUTODISCOVERY, body))
    assert discover_result.findtext("d:AuthPolicy", namespaces=NS) == "OnPremise"


def test_head_probe_answers_200(client, organisation):
    assert client.head(AUTODISCOVERY, secure=True).status_code == 200


def test_bad_auth_policy_setting_is_a_system_check_error(settings):
    from enrollment.checks import check_enrollment_settings

    settings.ENROLLMENT_AUTH_POLICY = "ldap"
    assert [e.id for e in check_enrollment_settings(None)] == ["enrollment.E101"]
