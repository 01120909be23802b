"""The device simulator: its checks against protocol-shaped answers, its HTTP behaviour, its command."""
import base64
import json
import ssl
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import CommandError, call_command
from lxml import etree
from lxml.builder import E, ElementMaker

import simulator as sim
from simulator import Simulator, SimulatorError, SoapFaultError

MESSAGE_ID = "urn:uuid:0d5a1441-5891-453b-becf-a2e5f6ea3749"
DEVICE_ID = "1E08C6E95D8BB843B1278FF45BC60CC6"
S = ElementMaker(namespace=sim.SOAP12_NS, nsmap={"s": sim.SOAP12_NS, "a": sim.WSA_NS})
A = ElementMaker(namespace=sim.WSA_NS)


# --- protocol-shaped answers (MS-MDE2 samples) ------------------------------------------------------

def envelope(action, body, *, relates_to=MESSAGE_ID):
    header = S.Header(A.Action(action, **{f"{{{sim.SOAP12_NS}}}mustUnderstand": "1"}), A.RelatesTo(relates_to))
    return etree.tostring(S.Envelope(header, S.Body(body)))


def discover_response(*, policy="OnPremise", version="4.0", ns=sim.DISCOVERY_NS, host="mdm.example.com",
                      auth_url="https://mdm.example.com/EnrollmentServer/auth", relates_to=MESSAGE_ID,
                      action=sim.DISCOVER_RESPONSE_ACTION):
    D = ElementMaker(namespace=ns, nsmap={None: ns})
    fields = [
        D.AuthPolicy(policy), D.EnrollmentVersion(version),
        D.EnrollmentPolicyServiceUrl(f"https://{host}/EnrollmentServer/Policy.svc"),
        D.EnrollmentServiceUrl("https://mdm.example.com/EnrollmentServer/Enrollment.svc"),
    ]
    if auth_url:
        fields.append(D.AuthenticationServiceUrl(auth_url))
    return envelope(action, D.DiscoverResponse(D.DiscoverResult(*fields)), relates_to=relates_to)


def fault(subcode="s:Authentication", reason="The user name or password is incorrect", error_type=None):
    detail = []
    if error_type:
        N = ElementMaker(namespace=sim.ENROLLMENT_NS, nsmap={None: sim.ENROLLMENT_NS})
        detail = [S.Detail(N.DeviceEnrollmentServiceError(N.ErrorType(error_type), N.Message(reason), N.TraceId("x")))]
    body = S.Fault(
        S.Code(S.Value("s:Receiver"), S.Subcode(S.Value(subcode))),
        S.Reason(S.Text(reason, **{"{http://www.w3.org/XML/1998/namespace}lang": "en-US"})),
        *detail,
    )
    return envelope(sim.RSTRC_ACTION, body)


def policies_response(*, key_length="2048", hash_ref="0", oid_ref="0", group="1", oid="2.16.840.1.101.3.4.2.1"):
    X = ElementMaker(namespace=sim.XCEP_NS, nsmap={None: sim.XCEP_NS, "xsi": sim.XSI_NS})
    nil = {f"{{{sim.XSI_NS}}}nil": "true"}
    hash_reference = X.hashAlgorithmOIDReference(hash_ref) if hash_ref is not None else X.hashAlgorithmOIDReference(**nil)
    attributes = X.attributes(
        X.commonName("mdmportal"), X.policySchema("3"),
        X.privateKeyAttributes(X.minimalKeyLength(key_length), X.keySpec(**nil), X.cryptoProviders(**nil)),
        hash_reference,
    )
    response = X.GetPoliciesResponse(
        X.response(X.policyID(), X.policies(X.policy(X.policyOIDReference("0"), X.cAs(**nil), attributes))),
        X.cAs(**nil),
        X.oIDs(X.oID(X.value(oid), X.group(group), X.oIDReferenceID(oid_ref), X.defaultName("szOID_NIST_sha256"))),
    )
    return envelope(sim.GET_POLICIES_RESPONSE_ACTION, response)


def rstrc(document, *, token_type=sim.TOKEN_TYPE, value_type=sim.PROV_DOC, prefixed=False, encoded=None):
    T = ElementMaker(namespace=sim.WST_NS, nsmap={None: sim.WST_NS})
    O = ElementMaker(namespace=sim.WSSE_NS, nsmap={"o": sim.WSSE_NS})
    attribute = f"{{{sim.WSSE_NS}}}ValueType" if prefixed else "ValueType"
    token = O.BinarySecurityToken(encoded or base64.b64encode(document).decode(), **{attribute: value_type, "EncodingType": sim.BASE64_BINARY})
    N = ElementMaker(namespace=sim.ENROLLMENT_NS, nsmap={None: sim.ENROLLMENT_NS})
    body = T.RequestSecurityTokenResponseCollection(T.RequestSecurityTokenResponse(
        T.TokenType(token_type), N.DispositionMessage(), T.RequestedSecurityToken(token), N.RequestID("0"),
    ))
    return envelope(sim.RSTRC_ACTION, body)


# --- a small PKI and the provisioning document (MS-MDE2 2.2.9.1) ------------------------------------

def _certificate(subject_cn, public_key, issuer_cn, issuer_key, *, ca, eku=True):
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
    root_key, issuing_key, device_key, other_key = keys
    root = _certificate("Test Root", root_key.public_key(), "Test Root", root_key, ca=True)
    issuing = _certificate("Test Issuing", issuing_key.public_key(), "Test Root", root_key, ca=True)
    client = _certificate(DEVICE_ID, device_key.public_key(), "Test Issuing", issuing_key, ca=False)
    return {
        "root": root, "issuing": issuing, "client": client, "device_key": device_key, "other_key": other_key,
        "issuing_key": issuing_key,
    }


def _der64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _cert_characteristic(cert, name=None):
    return E.characteristic(E.parm(name="EncodedCertificate", value=_der64(cert)), type=name or sim.thumbprint(cert))


def provisioning_document(pki, *, location="User", order=("Root", "CA", "My"), client=None, client_name=None,
                          private_key_container=True, appauth=("CLIENT", "APPSRV"), aauthdata=True,
                          provider="mdmportal", dmclient_provider=None, appid="w7", extra=None,
                          endless_interval="480"):
    client = client or pki["client"]
    my = [_cert_characteristic(client, client_name)]
    if private_key_container:
        my.append(E.characteristic(type="PrivateKeyContainer"))
    stores = {
        "Root": E.characteristic(E.characteristic(_cert_characteristic(pki["root"]), type="System"), type="Root"),
        "CA": E.characteristic(E.characteristic(_cert_characteristic(pki["issuing"]), type="System"), type="CA"),
        "My": E.characteristic(E.characteristic(*my, type=location), type="My"),
    }
    auth_blocks = {
        "CLIENT": E.characteristic(
            E.parm(name="AAUTHLEVEL", value="CLIENT"), E.parm(name="AAUTHTYPE", value="DIGEST"),
            E.parm(name="AAUTHSECRET", value="server-secret"),
            *([E.parm(name="AAUTHDATA", value="bm9uY2Vub25jZW5vbmNlMQ==")] if aauthdata else []),
            type="APPAUTH"),
        "APPSRV": E.characteristic(
            E.parm(name="AAUTHLEVEL", value="APPSRV"), E.parm(name="AAUTHTYPE", value="DIGEST"),
            E.parm(name="AAUTHNAME", value=DEVICE_ID), E.parm(name="AAUTHSECRET", value="client-secret"),
            E.parm(name="AAUTHDATA", value="bm9uY2Vub25jZW5vbmNlMg=="), type="APPAUTH"),
    }
    application = E.characteristic(
        E.parm(name="APPID", value=appid), E.parm(name="PROVIDER-ID", value=provider), E.parm(name="NAME", value="mdmportal"),
        E.parm(name="ADDR", value="https://mdm.example.com/ManagementServer/MDM.svc"),
        E.parm(name="BACKCOMPATRETRYDISABLED"),
        E.parm(name="SSLCLIENTCERTSEARCHCRITERIA", value=f"Subject=CN%3D{DEVICE_ID}&Stores=My%5C{location}"),
        *[auth_blocks[level] for level in appauth],
        type="APPLICATION",
    )
    poll = E.characteristic(
        E.parm(name="NumberOfFirstRetries", value="8", datatype="integer"),
        E.parm(name="IntervalForFirstSetOfRetries", value="15", datatype="integer"),
        E.parm(name="NumberOfRemainingScheduledRetries", value="0", datatype="integer"),
        E.parm(name="IntervalForRemainingScheduledRetries", value=endless_interval, datatype="integer"),
        type="Poll",
    )
    dmclient = E.characteristic(E.characteristic(E.characteristic(
        E.parm(name="EntDMID", value=DEVICE_ID, datatype="string"), poll,
        type=dmclient_provider or provider), type="Provider"), type="DMClient")
    children = [E.characteristic(*[stores[name] for name in order], type="CertificateStore"), application, dmclient]
    if extra:
        children.append(E.characteristic(type=extra))
    return etree.tostring(E("wap-provisioningdoc", *children, version="1.1"))


def validate(pki, document, **kwargs):
    kwargs.setdefault("public_key", pki["device_key"].public_key())
    kwargs.setdefault("device_id", DEVICE_ID)
    return sim.validate_provisioning_document(document, **kwargs)


# --- server address ---------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, expected", [
    ("mdm.example.com", "https://mdm.example.com/EnrollmentServer/Discovery.svc"),
    ("https://mdm.example.com", "https://mdm.example.com/EnrollmentServer/Discovery.svc"),
    ("https://mdm.example.com/", "https://mdm.example.com/EnrollmentServer/Discovery.svc"),
    ("https://mdm.example.com/EnrollmentServer/k3y/Discovery.svc", "https://mdm.example.com/EnrollmentServer/k3y/Discovery.svc"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/EnrollmentServer/Discovery.svc"),
])
def test_server_address_becomes_the_discovery_url_windows_uses(typed, expected):
    assert sim.discovery_url(typed) == expected


@pytest.mark.parametrize("typed", ["https://mdm.example.com/somewhere", "ftp://mdm.example.com", "https://"])
def test_server_address_that_windows_would_not_use_is_refused(typed):
    with pytest.raises(SimulatorError) as error:
        sim.discovery_url(typed)
    assert error.value.check == "server-url"


# --- Discover ---------------------------------------------------------------------------------------

def test_discover_response_as_ms_mde2_shows_it_is_accepted():
    discovery = sim.parse_discover_response(discover_response(auth_url=None), MESSAGE_ID)
    assert discovery.auth_policy == "OnPremise"
    assert discovery.enrollment_version == "4.0"
    assert discovery.policy_url == "https://mdm.example.com/EnrollmentServer/Policy.svc"
    assert discovery.enrollment_url == "https://mdm.example.com/EnrollmentServer/Enrollment.svc"


def test_discover_response_in_the_documented_namespace_with_slash_is_accepted():
    discovery = sim.parse_discover_response(discover_response(ns=sim.DISCOVERY_NS + "/"), MESSAGE_ID)
    assert discovery.auth_policy == "OnPremise"


def test_federated_discover_response_carries_the_authentication_url():
    discovery = sim.parse_discover_response(discover_response(policy="Federated"), MESSAGE_ID)
    assert discovery.authentication_url == "https://mdm.example.com/EnrollmentServer/auth"


@pytest.mark.parametrize("kwargs, check", [
    ({"relates_to": "urn:uuid:someone-else"}, "discover-relates-to"),
    ({"action": sim.GET_POLICIES_RESPONSE_ACTION}, "discover-action"),
    ({"policy": "Certificate"}, "discover-auth-policy"),
    ({"policy": "Federated", "auth_url": None}, "discover-authentication-url"),
    ({"policy": "Federated", "auth_url": "http://mdm.example.com/auth"}, "discover-authentication-url"),
    ({"version": "9.0"}, "discover-enrollment-version"),
    ({"version": "four"}, "discover-enrollment-version"),
    ({"host": "elsewhere.example.com"}, "discover-policy-url"),
])
def test_discover_response_breaking_the_protocol_names_the_failed_check(kwargs, check):
    with pytest.raises(SimulatorError) as error:
        sim.parse_discover_response(discover_response(**kwargs), MESSAGE_ID)
    assert error.value.check == check


def test_plain_http_service_urls_are_allowed_only_for_an_http_test_server():
    body = discover_response(host="mdm.example.com")
    plain = body.replace(b"https://", b"http://")
    with pytest.raises(SimulatorError, match="Windows requires https"):
        sim.parse_discover_response(plain, MESSAGE_ID)
    assert sim.parse_discover_response(plain, MESSAGE_ID, secure=False).policy_url.startswith("http://")


def test_soap_fault_carries_subcode_reason_and_error_type():
    with pytest.raises(SoapFaultError) as error:
        sim.read_envelope(fault("s:Authorization", "User not allowed to enroll", "DeviceCapReached"),
                          action=sim.RSTRC_ACTION, message_id=MESSAGE_ID, check="enroll")
    assert error.value.subcode == "s:Authorization"
    assert error.value.reason == "User not allowed to enroll"
    assert error.value.error_type == "DeviceCapReached"
    assert "s:Authorization" in str(error.value) and "User not allowed to enroll" in str(error.value)


@pytest.mark.parametrize("body", [b"<s:Envelope", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"<html></html>"])
def test_answer_that_is_not_a_soap_envelope_is_refused(body):
    with pytest.raises(SimulatorError) as error:
        sim.parse_discover_response(body, MESSAGE_ID)
    assert error.value.check == "discover"


# --- GetPolicies ------------------------------------------------------------------------------------

def test_policies_response_as_ms_xcep_shows_it_is_accepted():
    policy = sim.parse_policies_response(policies_response(), MESSAGE_ID)
    assert policy.minimal_key_length == 2048
    assert policy.hash_oid == "2.16.840.1.101.3.4.2.1"


def test_policies_response_without_a_hash_reference_leaves_the_windows_default():
    assert sim.parse_policies_response(policies_response(hash_ref=None), MESSAGE_ID).hash_oid is None


@pytest.mark.parametrize("kwargs, check", [
    ({"key_length": ""}, "policies-key-length"),
    ({"key_length": "512"}, "policies-key-length"),
    ({"hash_ref": "7"}, "policies-hash-oid"),
    ({"group": "3"}, "policies-hash-oid"),
    ({"oid": "1.2.3.4"}, "policies-hash-oid"),
])
def test_policies_response_breaking_the_shape_names_the_failed_check(kwargs, check):
    with pytest.raises(SimulatorError) as error:
        sim.parse_policies_response(policies_response(**kwargs), MESSAGE_ID)
    assert error.value.check == check


# --- RequestSecurityTokenResponseCollection ---------------------------------------------------------

def test_rstrc_yields_the_decoded_provisioning_document():
    assert sim.parse_enrollment_response(rstrc(b"<wap-provisioningdoc/>"), MESSAGE_ID) == b"<wap-provisioningdoc/>"


def test_rstrc_with_the_wsse_prefixed_value_type_is_accepted():
    assert sim.parse_enrollment_response(rstrc(b"<x/>", prefixed=True), MESSAGE_ID) == b"<x/>"


@pytest.mark.parametrize("kwargs, check", [
    ({"token_type": "urn:wrong"}, "enroll-token-type"),
    ({"value_type": sim.PKCS10}, "enroll-token"),
    ({"encoded": "not base64 at all!"}, "enroll-token"),
])
def test_rstrc_breaking_the_protocol_names_the_failed_check(kwargs, check):
    with pytest.raises(SimulatorError) as error:
        sim.parse_enrollment_response(rstrc(b"<x/>", **kwargs), MESSAGE_ID)
    assert error.value.check == check


def test_rstrc_answering_another_message_is_refused():
    with pytest.raises(SimulatorError) as error:
        sim.parse_enrollment_response(rstrc(b"<x/>").replace(MESSAGE_ID.encode(), b"urn:uuid:other"), MESSAGE_ID)
    assert error.value.check == "enroll-relates-to"


# --- provisioning document (MS-MDE2 2.2.9.1) --------------------------------------------------------

def test_provisioning_document_as_ms_mde2_shows_it_is_accepted(pki):
    provisioning, tree = validate(pki, provisioning_document(pki))
    assert provisioning.certificate == pki["client"]
    assert provisioning.root == pki["root"] and provisioning.issuing == pki["issuing"]
    assert provisioning.store_location == "User"
    assert provisioning.provider_id == "mdmportal"
    assert provisioning.management_url == "https://mdm.example.com/ManagementServer/MDM.svc"
    assert tree.getroot().tag == "wap-provisioningdoc"


def test_device_enrollment_expects_the_certificate_in_my_system(pki):
    provisioning, _ = validate(pki, provisioning_document(pki, location="System"), device_enrollment=True)
    assert provisioning.store_location == "System"


def test_user_store_is_refused_for_a_device_enrollment(pki):
    with pytest.raises(SimulatorError, match="My/System") as error:
        validate(pki, provisioning_document(pki, location="User"), device_enrollment=True)
    assert error.value.check == "provisioning-certificate-order"


def test_certificates_out_of_order_are_refused(pki):
    with pytest.raises(SimulatorError, match="CA/System, Root/System, My/User") as error:
        validate(pki, provisioning_document(pki, order=("CA", "Root", "My")))
    assert error.value.check == "provisioning-certificate-order"


def test_missing_issuing_ca_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, order=("Root", "My")))
    assert error.value.check == "provisioning-certificate-order"


def test_characteristic_not_named_after_the_thumbprint_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, client_name="00" * 20))
    assert error.value.check == "provisioning-thumbprint"


def test_certificate_for_another_key_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki), public_key=pki["other_key"].public_key())
    assert error.value.check == "provisioning-client-key"


def test_certificate_for_another_device_id_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki), device_id="0" * 32)
    assert error.value.check == "provisioning-client-subject"


def test_certificate_without_client_auth_is_refused(pki):
    client = _certificate(DEVICE_ID, pki["device_key"].public_key(), "Test Issuing", pki["issuing_key"], ca=False, eku=False)
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, client=client))
    assert error.value.check == "provisioning-client-eku"


def test_certificate_not_signed_by_the_issuing_ca_is_refused(pki):
    client = _certificate(DEVICE_ID, pki["device_key"].public_key(), "Test Issuing", pki["other_key"], ca=False)
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, client=client))
    assert error.value.check == "provisioning-chain"


@pytest.mark.parametrize("forged, message", [
    ("root", "the root certificate is not self-signed"),
    ("issuing", "the issuing CA is not signed by the root"),
])
def test_ca_certificate_with_a_forged_signature_is_refused_after_the_genuine_one_was_accepted(pki, forged, message):
    validate(pki, provisioning_document(pki))  # the genuine Root and CA pair, verified once and remembered
    names = {"root": "Test Root", "issuing": "Test Issuing"}
    # The same names and key, signed by a key that is not the root's.
    forgery = _certificate(names[forged], pki[forged].public_key(), "Test Root", pki["other_key"], ca=True)
    with pytest.raises(SimulatorError, match=message) as error:
        validate(pki, provisioning_document({**pki, forged: forgery}))
    assert error.value.check == "provisioning-chain"


def test_csr_prefix_drops_the_random_bytes_that_would_favour_some_characters(monkeypatch):
    rounds = iter([bytes([255, 0, 1]), bytes([4, 255, 255])])  # 255 is beyond 85 * 3: dropped
    monkeypatch.setattr(sim.certificates.secrets, "token_bytes", lambda count: next(rounds))
    assert sim.certificates._random_text("abc", 3) == "abb"


def test_missing_private_key_container_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, private_key_container=False))
    assert error.value.check == "provisioning-private-key-container"


@pytest.mark.parametrize("appauth", [("CLIENT",), ("APPSRV",), ()])
def test_missing_appauth_block_is_refused(pki, appauth):
    with pytest.raises(SimulatorError, match="APPAUTH") as error:
        validate(pki, provisioning_document(pki, appauth=appauth))
    assert error.value.check == "provisioning-appauth"


def test_appauth_without_aauthdata_nonce_is_refused(pki):
    with pytest.raises(SimulatorError, match="AAUTHDATA") as error:
        validate(pki, provisioning_document(pki, aauthdata=False))
    assert error.value.check == "provisioning-appauth"


def test_provider_id_differing_from_the_dmclient_provider_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, dmclient_provider="someone-else"))
    assert error.value.check == "provisioning-provider-id"


def test_application_other_than_w7_is_refused(pki):
    with pytest.raises(SimulatorError, match="APPID") as error:
        validate(pki, provisioning_document(pki, appid="w4"))
    assert error.value.check == "provisioning-application"


def test_extra_top_level_characteristic_is_refused(pki):
    with pytest.raises(SimulatorError, match="RootCATrustedCertificates") as error:
        validate(pki, provisioning_document(pki, extra="RootCATrustedCertificates"))
    assert error.value.check == "provisioning"


def test_endless_one_minute_poll_is_refused(pki):
    with pytest.raises(SimulatorError) as error:
        validate(pki, provisioning_document(pki, endless_interval="1"))
    assert error.value.check == "provisioning-poll"


# --- federated sign-in (MS-MDE2 3.2) ----------------------------------------------------------------

SIGN_IN_PAGE = b"""<!doctype html><html><body>
<form method="post" action="signin?next=1">
  <input type="hidden" name="csrfmiddlewaretoken" value="tok3n">
  <input type="hidden" name="appru" value="ms-app://windows.immersivecontrolpanel">
  <input type="email" name="username" value="">
  <input type="password" name="password">
  <button type="submit" name="action" value="sign-in">Sign in</button>
</form></body></html>"""


def test_sign_in_url_keeps_the_servers_own_query_string():
    url = sim.sign_in_url("https://mdm.example.com/EnrollmentServer/auth?os=10.0", "alice@example.com")
    assert url == ("https://mdm.example.com/EnrollmentServer/auth?os=10.0"
                   "&appru=ms-app%3A%2F%2Fwindows.immersivecontrolpanel&login_hint=alice%40example.com")


def test_sign_in_form_is_filled_like_a_user_would():
    action, fields = sim.fill_sign_in_form(SIGN_IN_PAGE, "https://mdm.example.com/EnrollmentServer/auth?x=1",
                                           "alice@example.com", "s3cret")
    assert action == "https://mdm.example.com/EnrollmentServer/signin?next=1"
    assert dict(fields) == {
        "csrfmiddlewaretoken": "tok3n", "appru": "ms-app://windows.immersivecontrolpanel",
        "username": "alice@example.com", "password": "s3cret", "action": "sign-in",
    }


def test_error_page_is_reported_by_its_text_not_its_styles():
    page = b"<html><head><title>403</title><style>h1 { color: red }</style></head><body><h1>Forbidden</h1><p>CSRF failed.</p></body></html>"
    assert sim.transport._page_text(page) == "Forbidden CSRF failed."


def test_page_without_a_sign_in_form_is_reported():
    with pytest.raises(SimulatorError) as error:
        sim.fill_sign_in_form(b"<html><body><p>Maintenance</p></body></html>", "https://x/auth", "a@b", "p")
    assert error.value.check == "sign-in-form"


def test_auto_post_form_yields_the_wresult_token():
    page = b"""<html><body><form method="post" action="ms-app://windows.immersivecontrolpanel">
      <input type="hidden" name="wresult" value="eyJ0b2tlbiI6MX0.sig"></form></body></html>"""
    assert sim.read_auto_post(page, "https://x/auth") == "eyJ0b2tlbiI6MX0.sig"


def test_auto_post_to_anything_but_appru_is_refused():
    page = b"""<html><body><form method="post" action="https://evil.example.com/">
      <input type="hidden" name="wresult" value="t"></form></body></html>"""
    with pytest.raises(SimulatorError, match="no form posts to ms-app://") as error:
        sim.read_auto_post(page, "https://x/auth")
    assert error.value.check == "sign-in-result"


def test_sign_in_form_shown_again_reports_the_servers_error():
    page = SIGN_IN_PAGE.replace(b"<form", b'<ul class="errorlist"><li>Wrong email or password.</li></ul><form')
    with pytest.raises(SimulatorError, match="Wrong email or password"):
        sim.read_auto_post(page, "https://x/auth")


# --- the requests the simulator sends ----------------------------------------------------------------

def _find(element, path):
    return element.find(path, {"s": sim.SOAP12_NS, "a": sim.WSA_NS, "wsse": sim.WSSE_NS, "d": sim.DISCOVERY_NS,
                               "wst": sim.WST_NS, "ac": sim.AC_NS})


def test_discover_request_offers_both_policies_as_a_hololens():
    simulator = Simulator("mdm.example.com", "alice@example.com", "pw", hololens=True)
    request = simulator.discover_envelope(MESSAGE_ID)
    assert _find(request, "s:Header/a:MessageID").text == MESSAGE_ID
    assert _find(request, "s:Header/a:Action").text == sim.DISCOVER_ACTION
    discover = _find(request, "s:Body/d:Discover/d:request")
    assert [p.text for p in discover.find(f"{{{sim.DISCOVERY_NS}}}AuthPolicies")] == ["OnPremise", "Federated"]
    assert discover.findtext(f"{{{sim.DISCOVERY_NS}}}OSEdition") == "136"
    assert discover.findtext(f"{{{sim.DISCOVERY_NS}}}RequestVersion") == "5.0"
    assert discover.findtext(f"{{{sim.DISCOVERY_NS}}}DeviceType") == "CIMClient_Windows"


def test_on_premise_requests_carry_a_username_token():
    simulator = Simulator("mdm.example.com", "alice@example.com", "pw")
    request = simulator.policies_envelope(MESSAGE_ID, "https://mdm.example.com/Policy.svc", None)
    token = _find(request, "s:Header/wsse:Security/wsse:UsernameToken")
    assert token.findtext(f"{{{sim.WSSE_NS}}}Username") == "alice@example.com"
    password = token.find(f"{{{sim.WSSE_NS}}}Password")
    assert password.text == "pw" and password.get(f"{{{sim.WSSE_NS}}}Type") == sim.PASSWORD_TEXT


def test_federated_requests_carry_the_wresult_base64_encoded():
    simulator = Simulator("mdm.example.com", "alice@example.com", "pw", federated=True)
    request = simulator.enrollment_envelope(MESSAGE_ID, "https://mdm.example.com/Enrollment.svc", "tok.en", b"csr")
    token = _find(request, "s:Header/wsse:Security/wsse:BinarySecurityToken")
    assert token.get("ValueType") == sim.USER_TOKEN
    assert base64.b64decode(token.text) == b"tok.en"
    items = {i.get("Name"): i.findtext(f"{{{sim.AC_NS}}}Value")
             for i in request.iterfind(f".//{{{sim.AC_NS}}}ContextItem")}
    assert items["DeviceID"] == simulator.device_id and len(items["DeviceID"]) == 32
    assert len(items["HWDevID"]) == 64 and items["EnrollmentType"] == "Full" and items["OSEdition"] == "48"
    csr = _find(request, "s:Body/wst:RequestSecurityToken/wsse:BinarySecurityToken")
    assert csr.get("ValueType") == sim.PKCS10 and base64.b64decode(csr.text) == b"csr"


def test_device_enrollment_requests_say_so():
    simulator = Simulator("mdm.example.com", "alice@example.com", "pw", device_enrollment=True, device_id="ab" * 16)
    items = dict(simulator.context_items())
    assert items["EnrollmentType"] == "Device"
    assert items["DeviceID"] == "AB" * 16


def test_given_key_smaller_than_the_policy_asks_is_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    simulator = Simulator("mdm.example.com", "alice@example.com", "pw", private_key=small)
    with pytest.raises(SimulatorError) as error:
        simulator.make_key(sim.Policy(minimal_key_length=2048, hash_oid=None))
    assert error.value.check == "keygen"


def test_device_id_that_is_not_32_hex_digits_is_refused():
    with pytest.raises(SimulatorError) as error:
        Simulator("mdm.example.com", "alice@example.com", "pw", device_id="xyz")
    assert error.value.check == "device-id"


# --- HTTP behaviour against a scripted server -------------------------------------------------------

class ScriptedServer:
    """A local HTTP server answering each path with (status, headers, body), or a function of the request body."""

    def __init__(self, routes):
        routes_ = routes

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                request_body = self.rfile.read(length)
                route = routes_.get(self.path.split("?")[0], (404, {}, b""))
                status, headers, body = route(request_body) if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted():
    servers = []

    def start(routes):
        servers.append(ScriptedServer(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _echo(body_for_message_id, status=200, content_type=sim.SOAP_CONTENT_TYPE):
    def answer(request_body):
        if not request_body:  # the GET probe
            return 200, {}, b""
        message_id = etree.fromstring(request_body).findtext(f".//{{{sim.WSA_NS}}}MessageID")
        return status, {"Content-Type": content_type}, body_for_message_id(message_id)
    return answer


def test_probe_redirect_is_reported_not_followed(scripted):
    server = scripted({sim.DISCOVERY_PATH: (301, {"Location": "https://elsewhere/"}, b"")})
    with pytest.raises(SimulatorError, match="301 redirecting to 'https://elsewhere/'") as error:
        Simulator(server.url, "alice@example.com", "pw").probe()
    assert error.value.check == "probe"


def test_probe_other_than_200_is_reported(scripted):
    server = scripted({})
    with pytest.raises(SimulatorError, match="HTTP 404, expected 200"):
        Simulator(server.url, "alice@example.com", "pw").probe()


def test_unreachable_server_is_reported():
    with pytest.raises(SimulatorError, match="cannot reach") as error:
        Simulator("http://127.0.0.1:9", "alice@example.com", "pw", timeout=5).probe()
    assert error.value.check == "probe"


def test_resolve_reaches_a_host_name_that_has_no_dns_entry(scripted):
    server = scripted({sim.DISCOVERY_PATH: (200, {}, b"")})
    port = server.httpd.server_port
    simulator = Simulator(f"http://mdm.invalid:{port}", "alice@example.com", "pw",
                          resolve={("MDM.invalid", port): "127.0.0.1"})
    assert simulator.probe() == (None, "200 OK")


@pytest.mark.parametrize("value, expected", [
    ("mdm.test:443:127.0.0.1", (("mdm.test", 443), "127.0.0.1")),
    ("MDM.test:8443:[::1]", (("mdm.test", 8443), "::1")),
])
def test_resolve_option_is_read_as_curl_writes_it(value, expected):
    assert sim.parse_resolve(value) == expected


@pytest.mark.parametrize("value", ["mdm.test:443", "mdm.test:https:127.0.0.1", ":443:127.0.0.1"])
def test_resolve_option_of_another_shape_is_refused(value):
    with pytest.raises(CommandError, match="--resolve: .* is not HOST:PORT:ADDRESS"):
        call_command("simulate_device", "https://mdm.test", "--email", "a@example.com", "--password", "pw",
                     "--resolve", value)


def test_device_certificate_goes_in_the_tls_handshake_over_https_unless_header_mode_is_asked():
    assert not Simulator("https://mdm.test", "a@example.com").client_cert_header
    assert Simulator("https://mdm.test", "a@example.com", client_cert_header=True).client_cert_header
    assert Simulator("http://mdm.test", "a@example.com").client_cert_header  # no TLS to carry it


def _https_context(opener):
    (handler,) = [h for h in opener.handlers if isinstance(h, sim.transport._HTTPSHandler)]
    return handler._connection.keywords["context"]


def test_devices_share_the_trust_store_read_once_per_ca_file_content(tmp_path, pki):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pki["root"].public_bytes(serialization.Encoding.PEM))
    first, second = (Simulator("https://mdm.test", "a@example.com", ca_file=str(ca_file)) for _ in range(2))
    assert _https_context(first._soap) is _https_context(second._soap) is _https_context(first._browser)
    ca_file.write_bytes(pki["issuing"].public_bytes(serialization.Encoding.PEM))  # the file changed: read again
    context = _https_context(Simulator("https://mdm.test", "a@example.com", ca_file=str(ca_file))._soap)
    assert context is not _https_context(first._soap)
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "Test Issuing"),),)]
    assert _https_context(Simulator("https://mdm.test", "a@example.com")._soap) is not context  # the system's store
    unverified = _https_context(Simulator("https://mdm.test", "a@example.com", verify_tls=False)._soap)
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname


def test_devices_share_the_soap_opener_of_the_same_resolve_but_not_the_web_views_cookies():
    first, second = (Simulator("http://mdm.test", "a@example.com", resolve={("mdm.test", 80): "127.0.0.1"})
                     for _ in range(2))
    other = Simulator("http://mdm.test", "a@example.com", resolve={("mdm.test", 80): "127.0.0.2"})
    assert first._soap is second._soap and other._soap is not first._soap
    assert first._browser is not second._browser and first._browser is first._browser


def test_client_certificate_goes_into_a_context_of_its_own_not_the_shared_one(pki):
    simulator = Simulator("https://mdm.test", "a@example.com")
    opener, headers = simulator.device_opener(pki["client"], pki["device_key"])
    assert headers == {} and _https_context(opener) is not _https_context(simulator._soap)
    assert simulator.device_opener(pki["client"], pki["device_key"])[0] is opener


def test_discover_over_http_follows_the_server_answer(scripted):
    routes = {sim.DISCOVERY_PATH: _echo(lambda m: discover_response(relates_to=m).replace(b"https://", b"http://"))}
    server = scripted(routes)
    discovery, detail = Simulator(server.url, "alice@example.com", "pw").discover()
    assert discovery.auth_policy == "OnPremise" and "EnrollmentVersion 4.0" in detail


def test_discover_answered_with_the_wrong_content_type_is_refused(scripted):
    routes = {sim.DISCOVERY_PATH: _echo(lambda m: discover_response(relates_to=m), content_type="text/html")}
    server = scripted(routes)
    with pytest.raises(SimulatorError) as error:
        Simulator(server.url, "alice@example.com", "pw").discover()
    assert error.value.check == "discover-content-type"


def test_fault_sent_with_http_500_is_read_as_a_fault(scripted):
    body = fault("s:MessageFormat", "Bad request").replace(sim.RSTRC_ACTION.encode(), sim.DISCOVER_RESPONSE_ACTION.encode())
    server = scripted({sim.DISCOVERY_PATH: (500, {"Content-Type": sim.SOAP_CONTENT_TYPE}, body)})
    with pytest.raises(SoapFaultError) as error:
        Simulator(server.url, "alice@example.com", "pw").discover()
    assert error.value.subcode == "s:MessageFormat"


def test_server_choosing_federated_when_on_premise_was_expected_is_reported(scripted):
    routes = {sim.DISCOVERY_PATH: _echo(lambda m: discover_response(policy="Federated", relates_to=m))}
    server = scripted(routes)
    with pytest.raises(SimulatorError, match="run with --federated") as error:
        Simulator(server.url, "alice@example.com", "pw").discover()
    assert error.value.check == "discover-auth-policy"


# --- the command ------------------------------------------------------------------------------------

def test_command_reports_the_failed_check_and_exits_non_zero(scripted, capsys):
    server = scripted({})
    with pytest.raises(CommandError, match="probe: GET .* answered HTTP 404"):
        call_command("simulate_device", server.url, "--email", "alice@example.com", "--password", "pw")


def test_command_json_failure_is_machine_readable(scripted, capsys):
    server = scripted({})
    with pytest.raises(CommandError):
        call_command("simulate_device", server.url, "--email", "alice@example.com", "--password", "pw", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["check"] == "probe"


# --- a whole run against a scripted server that follows the protocol --------------------------------

AUTH_PAGE = SIGN_IN_PAGE.replace(b'action="signin?next=1"', b'action="/signin"')
AUTO_POST = b"""<html><body><form method="post" action="ms-app://windows.immersivecontrolpanel">
  <input type="hidden" name="wresult" value="signed.token"></form><script>document.forms[0].submit()</script></body></html>"""


def _security(request_body):
    return etree.fromstring(request_body).find(f".//{{{sim.WSSE_NS}}}Security")


def _scripted_enrollment_server(scripted, pki, *, policy="OnPremise", seen=None):
    from pki.csr import parse_csr

    seen = seen if seen is not None else {}
    base = {}

    def discover(message_id):
        url = base["url"]
        return discover_response(policy=policy, relates_to=message_id, auth_url=f"{url}/auth?os=1").replace(
            b"https://mdm.example.com", url.encode())

    def policies(request_body):
        seen["policies"] = _security(request_body)
        message_id = etree.fromstring(request_body).findtext(f".//{{{sim.WSA_NS}}}MessageID")
        return 200, {"Content-Type": sim.SOAP_CONTENT_TYPE}, policies_response().replace(MESSAGE_ID.encode(), message_id.encode())

    def enroll(request_body):
        request = etree.fromstring(request_body)
        seen["enroll"] = _security(request_body)
        csr = parse_csr(base64.b64decode(request.findtext(f".//{{{sim.WST_NS}}}RequestSecurityToken/{{{sim.WSSE_NS}}}BinarySecurityToken")))
        seen["csr"] = csr
        client = _certificate(csr.device_id, csr.public_key, "Test Issuing", pki["issuing_key"], ca=False)
        document = provisioning_document(pki, client=client).replace(DEVICE_ID.encode(), csr.device_id.encode())
        message_id = request.findtext(f".//{{{sim.WSA_NS}}}MessageID")
        return 200, {"Content-Type": sim.SOAP_CONTENT_TYPE}, rstrc(document).replace(MESSAGE_ID.encode(), message_id.encode())

    def auth(_):
        return 200, {"Content-Type": "text/html", "Set-Cookie": "csrftoken=c00kie; Path=/"}, AUTH_PAGE

    def sign_in(request_body):
        seen["sign_in"] = dict(part.split("=", 1) for part in request_body.decode().split("&"))
        return 200, {"Content-Type": "text/html"}, AUTO_POST

    server = scripted({
        sim.DISCOVERY_PATH: _echo(discover),
        "/EnrollmentServer/Policy.svc": policies,
        "/EnrollmentServer/Enrollment.svc": enroll,
        "/auth": auth,
        "/signin": sign_in,
    })
    base["url"] = server.url
    return server


def test_simulator_enrolls_on_premise_against_a_server_that_follows_ms_mde2(scripted, pki):
    seen = {}
    server = _scripted_enrollment_server(scripted, pki, seen=seen)
    result = Simulator(server.url, "alice@example.com", "pw").run()
    assert [step.name for step in result.steps] == ["probe", "discover", "policies", "keygen", "enroll"]
    assert result.certificate.subject.rfc4514_string() == f"CN={result.device_id}"
    assert seen["csr"].device_id == result.device_id
    assert seen["csr"].hash_name == "sha1"
    assert seen["csr"].public_key.public_numbers() == result.private_key.public_key().public_numbers()
    assert seen["enroll"].findtext(f".//{{{sim.WSSE_NS}}}Password") == "pw"
    assert set(result.responses) == {"discover", "policies", "enroll"}
    assert result.as_dict()["certificate"]["thumbprint"] == sim.thumbprint(result.certificate)


def test_simulator_signs_in_federated_and_sends_the_wresult_in_both_calls(scripted, pki):
    seen = {}
    server = _scripted_enrollment_server(scripted, pki, policy="Federated", seen=seen)
    result = Simulator(server.url, "alice@example.com", "pw", federated=True).run()
    assert [step.name for step in result.steps] == ["probe", "discover", "sign-in", "policies", "keygen", "enroll"]
    assert seen["sign_in"]["csrfmiddlewaretoken"] == "tok3n"
    assert seen["sign_in"]["password"] == "pw"
    for call in ("policies", "enroll"):
        token = seen[call].find(f"{{{sim.WSSE_NS}}}BinarySecurityToken")
        assert base64.b64decode(token.text) == b"signed.token"


@pytest.mark.parametrize("policy, expected", [
    (None, {"Origin": "https://mdm.example.com", "Referer": "https://mdm.example.com/auth?a=1"}),
    ("no-referrer", {"Origin": "null"}),
    ("same-origin", {"Origin": "https://mdm.example.com", "Referer": "https://mdm.example.com/auth?a=1"}),
    ("origin", {"Origin": "https://mdm.example.com", "Referer": "https://mdm.example.com/"}),
])
def test_sign_in_post_carries_the_origin_and_referer_a_browser_would(policy, expected):
    assert sim.form_post_headers("https://mdm.example.com/auth?a=1", "https://mdm.example.com/auth?a=1", policy) == expected


def test_sign_in_post_to_plain_http_from_https_sends_a_null_origin():
    assert sim.form_post_headers("https://mdm.example.com/auth", "http://mdm.example.com/auth") == {"Origin": "null"}


# --- end to end: the simulator against the real endpoints over HTTP ---------------------------------

@pytest.fixture
def enrollment_server(http_live_server):
    """A live server with our CA, reachable over plain HTTP."""
    from tests.factories import OrganisationFactory
    from tests.factories_enrollment import CertificateAuthorityFactory

    OrganisationFactory(enrollment_base_url=http_live_server.url)
    CertificateAuthorityFactory(issuing=True)
    return http_live_server


@pytest.fixture
def carol(transactional_db):
    from tests.factories import UserFactory

    return UserFactory(email="carol@example.com")


def assert_enrolled(result, user, **device_fields):
    from pki import ca
    from enrollment.models import Device

    root, issuing = ca.active_chain()
    assert result.provisioning.root == root and result.provisioning.issuing == issuing
    result.certificate.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    ours = result.private_key.public_key().public_numbers()
    assert result.certificate.public_key().public_numbers() == ours
    device = Device.objects.get(device_id=result.device_id)
    assert device.user == user
    assert device.hw_dev_id == result.hw_dev_id
    assert device.certificate_thumbprint == sim.thumbprint(result.certificate)
    for name, value in device_fields.items():
        assert getattr(device, name) == value, name
    return device


def test_simulated_pc_enrolls_on_premise_over_http(enrollment_server, carol):
    from tests.factories import PASSWORD

    result = Simulator(enrollment_server.url, "carol@example.com", PASSWORD).run()
    assert result.discovery.auth_policy == "OnPremise"
    assert result.provisioning.store_location == "User"
    assert_enrolled(result, carol, kind="pc", enrollment_type="Full", method="onpremise", os_edition=48)


def test_simulated_pc_enrolls_federated_through_the_sign_in_page(enrollment_server, carol):
    from accounts.models import Organisation
    from tests.factories import PASSWORD

    Organisation.objects.filter(pk=Organisation.get().pk).update(auth_policy="federated")
    result = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, federated=True).run()
    assert [step.name for step in result.steps] == ["probe", "discover", "sign-in", "policies", "keygen", "enroll"]
    assert_enrolled(result, carol, kind="pc", enrollment_type="Full", method="federated")


def test_simulated_pc_enrolls_with_pin_and_password_through_the_sign_in_page(enrollment_server, carol):
    from enrollment import pins
    from enrollment.models import RegistrationPin
    from tests.factories import PASSWORD, UserGroupFactory

    UserGroupFactory(pin_and_password=True, members=[carol])
    _pin, raw = pins.issue(carol)
    result = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, federated=True, pin=raw).run()
    assert result.discovery.auth_policy == "Federated"  # although the organisation is on-premise
    device = assert_enrolled(result, carol, method="federated")
    assert RegistrationPin.objects.get().consumed_by == device


def test_simulated_pc_enrolls_on_premise_with_a_registration_pin(enrollment_server, carol):
    from enrollment import pins
    from tests.factories import UserGroupFactory

    UserGroupFactory(pin_only=True, members=[carol])
    _pin, raw = pins.issue(carol)
    result = Simulator(enrollment_server.url, "carol@example.com", raw).run()
    assert_enrolled(result, carol, method="pin")


def test_simulated_hololens_enrolls_through_the_organisations_enrollment_url(enrollment_server, carol):
    from accounts.models import Organisation
    from tests.factories import PASSWORD

    result = Simulator(Organisation.get().enrollment_url, "carol@example.com", PASSWORD, hololens=True).run()
    assert_enrolled(result, carol, kind="hololens2", os_edition=136)


def test_simulated_device_enrollment_gets_its_certificate_in_my_system(enrollment_server, carol, pki):
    from tests.factories import PASSWORD

    key = pki["device_key"]
    result = Simulator(enrollment_server.url, "carol@example.com", PASSWORD, device_enrollment=True, private_key=key).run()
    assert result.private_key is key
    assert result.provisioning.store_location == "System"
    assert_enrolled(result, carol, enrollment_type="Device")


def test_wrong_password_is_an_authentication_fault_and_enrolls_nothing(enrollment_server, carol):
    from enrollment.models import Device

    with pytest.raises(SoapFaultError) as error:
        Simulator(enrollment_server.url, "carol@example.com", "not the password").run()
    assert error.value.subcode == "s:Authentication"
    assert error.value.check == "policies"
    assert not Device.objects.exists()


def test_command_enrolls_against_a_live_server_and_prints_json(enrollment_server, carol, capsys):
    from tests.factories import PASSWORD

    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD, "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["auth_policy"] == "OnPremise"
    assert result["certificate"]["subject"] == f"CN={result['device_id']}"


def test_command_prints_a_readable_summary(enrollment_server, carol, capsys):
    from tests.factories import PASSWORD

    call_command("simulate_device", enrollment_server.url, "--email", "carol@example.com", "--password", PASSWORD, "--hololens")
    out = capsys.readouterr().out
    assert "Simulated HoloLens 2 enrollment" in out
    for label in ("Auth policy:", "Device ID:", "Thumbprint:", "Expires:", "Management URL:", "Total time:"):
        assert label in out


def test_python_m_simulator_enrolls_without_settings_or_secrets(enrollment_server, carol):
    """The simulator is a client: `python -m simulator` runs with no Django settings, no SECRET_KEY and no
    database, and its --json result names the certificate the server issued."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from enrollment.models import Device
    from tests.factories import PASSWORD

    env = {name: value for name, value in os.environ.items()
           if name not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "CA_KEY_PASSPHRASE"}}
    done = subprocess.run(
        [sys.executable, "-m", "simulator", enrollment_server.url, "--email", "carol@example.com",
         "--password", PASSWORD, "--json"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Device.objects.get(device_id=result["device_id"]).user == carol


def test_python_m_simulator_refuses_options_that_do_not_go_together():
    import os
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", "simulator", "https://mdm.example.com", "--email", "a@example.com",
         "--password", "x", "--digest"],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "DJANGO_SETTINGS_MODULE": ""},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "go with --checkin" in done.stderr
