"""The wap-provisioningdoc (MS-MDE2 2.2.9.1), parsed back node by node."""
import base64

import pytest
from cryptography import x509
from lxml import etree

from pki import ca
from enrollment.provisioning_document import build_document, build_renewal_document
from tests.factories_enrollment import create_ca_chain, rsa_key

pytestmark = pytest.mark.django_db

DEVICE_ID = "1E08C6E95D8BB843B1278FF45BC60CC6"
POLL = [
    ("NumberOfFirstRetries", "8", "integer"), ("IntervalForFirstSetOfRetries", "15", "integer"),
    ("NumberOfSecondRetries", "5", "integer"), ("IntervalForSecondSetOfRetries", "60", "integer"),
    ("NumberOfRemainingScheduledRetries", "0", "integer"), ("IntervalForRemainingScheduledRetries", "480", "integer"),
    ("PollOnLogin", "true", "boolean"), ("AllUsersPollOnFirstLogin", "true", "boolean"),
]


@pytest.fixture
def issued():
    create_ca_chain()
    root, issuing = ca.active_chain()
    device_cert = ca.issue_device_certificate(rsa_key(20).public_key(), DEVICE_ID)
    return root, issuing, device_cert


def document(issued, **overrides):
    root, issuing, device_cert = issued
    arguments = dict(
        root=root, issuing=issuing, device_cert=device_cert, enrollment_type="Full", device_id=DEVICE_ID,
        upn="alice@example.com", device_name="DESKTOP-ALICE", provider_id="mdmportal",
        management_url="https://mdm.example.com/ManagementServer/MDM.svc",
        client_secret="client-secret", server_secret="server-secret", renew_period_days=60, retry_interval_days=4,
    )
    arguments.update(overrides)
    return etree.fromstring(build_document(**arguments))


def types(element):
    return [child.get("type") for child in element.findall("characteristic")]


def parm_items(element):
    return [(parm.get("name"), parm.get("value"), parm.get("datatype")) for parm in element.findall("parm")]


def only(element, xpath):
    (found,) = element.xpath(xpath)
    return found


def encoded(characteristic):
    (parm,) = characteristic
    assert parm.tag == "parm" and parm.get("name") == "EncodedCertificate"
    return x509.load_der_x509_certificate(base64.b64decode(parm.get("value")))


def test_document_has_the_three_top_level_characteristics_in_order(issued):
    doc = document(issued)

    assert doc.tag == "wap-provisioningdoc" and doc.get("version") == "1.1"
    assert types(doc) == ["CertificateStore", "APPLICATION", "DMClient"]


def test_certificate_store_holds_root_ca_then_device_certificate(issued):
    root, issuing, device_cert = issued
    store = document(issued)[0]

    assert types(store) == ["Root", "CA", "My"]
    root_node = only(store, "characteristic[@type='Root']/characteristic[@type='System']")
    assert types(root_node) == [ca.thumbprint(root)]
    assert encoded(root_node[0]) == root
    ca_node = only(store, "characteristic[@type='CA']/characteristic[@type='System']")
    assert types(ca_node) == [ca.thumbprint(issuing)]
    assert encoded(ca_node[0]) == issuing
    my = only(store, "characteristic[@type='My']")
    assert types(my) == ["User", "WSTEP"]
    user = my[0]
    assert types(user) == [ca.thumbprint(device_cert), "PrivateKeyContainer"]
    assert encoded(user[0]) == device_cert
    assert len(user[1]) == 0 and dict(user[1].attrib) == {"type": "PrivateKeyContainer"}


def test_device_enrollment_puts_the_certificate_in_the_system_store(issued):
    doc = document(issued, enrollment_type="Device")

    my = only(doc, "characteristic[@type='CertificateStore']/characteristic[@type='My']")
    assert types(my) == ["System", "WSTEP"]
    assert types(my[0])[1] == "PrivateKeyContainer"
    criteria = only(doc, "characteristic[@type='APPLICATION']/parm[@name='SSLCLIENTCERTSEARCHCRITERIA']")
    assert criteria.get("value").endswith("&Stores=My%5CSystem")
    assert not doc.xpath("//parm[@name='UPN']")


def test_application_block_is_the_w7_account(issued):
    application = document(issued)[1]

    assert application.tag == "characteristic" and application.get("type") == "APPLICATION"
    assert parm_items(application) == [
        ("APPID", "w7", None),
        ("PROVIDER-ID", "mdmportal", None),
        ("NAME", "mdmportal", None),
        ("ADDR", "https://mdm.example.com/ManagementServer/MDM.svc", None),
        ("CONNRETRYFREQ", "6", None),
        ("INITIALBACKOFFTIME", "30000", None),
        ("MAXBACKOFFTIME", "120000", None),
        ("BACKCOMPATRETRYDISABLED", None, None),
        ("DEFAULTENCODING", "application/vnd.syncml.dm+xml", None),
        ("SSLCLIENTCERTSEARCHCRITERIA", f"Subject=CN%3D{DEVICE_ID}&Stores=My%5CUser", None),
    ]
    assert set(only(application, "parm[@name='BACKCOMPATRETRYDISABLED']").attrib) == {"name"}
    assert types(application) == ["APPAUTH", "APPAUTH"]


def test_search_criteria_ampersand_is_escaped_in_the_xml(issued):
    root, issuing, device_cert = issued
    raw = build_document(
        root=root, issuing=issuing, device_cert=device_cert, enrollment_type="Full", device_id=DEVICE_ID, upn="",
        device_name="", provider_id="mdmportal", management_url="https://mdm.example.com/ManagementServer/MDM.svc",
        client_secret="c", server_secret="s", renew_period_days=60, retry_interval_days=4,
    )

    assert f'value="Subject=CN%3D{DEVICE_ID}&amp;Stores=My%5CUser"'.encode() in raw
    assert not raw.startswith(b"<?xml")


def test_both_appauth_blocks_carry_secrets_and_random_nonces(issued):
    first, second = document(issued), document(issued)

    client, server = first.xpath("characteristic[@type='APPLICATION']/characteristic[@type='APPAUTH']")
    assert [name for name, _value, _type in parm_items(client)] == ["AAUTHLEVEL", "AAUTHTYPE", "AAUTHSECRET", "AAUTHDATA"]
    assert dict((n, v) for n, v, _t in parm_items(client))["AAUTHLEVEL"] == "CLIENT"
    assert dict((n, v) for n, v, _t in parm_items(client))["AAUTHTYPE"] == "DIGEST"
    assert dict((n, v) for n, v, _t in parm_items(client))["AAUTHSECRET"] == "client-secret"
    assert [name for name, _value, _type in parm_items(server)] == [
        "AAUTHLEVEL", "AAUTHTYPE", "AAUTHNAME", "AAUTHSECRET", "AAUTHDATA"]
    server_values = dict((n, v) for n, v, _t in parm_items(server))
    assert server_values["AAUTHLEVEL"] == "APPSRV" and server_values["AAUTHTYPE"] == "DIGEST"
    assert server_values["AAUTHNAME"] == DEVICE_ID and server_values["AAUTHSECRET"] == "server-secret"
    nonces = [parm.get("value") for doc in (first, second) for parm in doc.xpath("//parm[@name='AAUTHDATA']")]
    assert all(len(base64.b64decode(nonce, validate=True)) == 16 for nonce in nonces)
    assert len(set(nonces)) == 4


def test_dmclient_provider_has_identity_and_poll_schedule(issued):
    dmclient = document(issued)[2]

    provider = only(dmclient, "characteristic[@type='Provider']")
    assert types(provider) == ["mdmportal"]
    node = provider[0]
    assert parm_items(node) == [
        ("EntDMID", DEVICE_ID, "string"),
        ("EntDeviceName", "DESKTOP-ALICE", "string"),
        ("UPN", "alice@example.com", "string"),
    ]
    assert [child.tag for child in node] == ["parm", "parm", "parm", "characteristic"]
    assert types(node) == ["Poll"]
    assert parm_items(node[3]) == POLL


def test_provider_id_names_both_the_application_and_the_dmclient_node(issued):
    doc = document(issued, provider_id="contoso-mdm")

    assert only(doc, "characteristic[@type='APPLICATION']/parm[@name='PROVIDER-ID']").get("value") == "contoso-mdm"
    assert types(only(doc, "characteristic[@type='DMClient']/characteristic[@type='Provider']")) == ["contoso-mdm"]


def test_values_are_escaped_not_concatenated(issued):
    hostile = 'Bob"/><characteristic type="Evil"/>&<x>'

    doc = document(issued, device_name=hostile, upn=hostile)

    assert only(doc, "//parm[@name='EntDeviceName']").get("value") == hostile
    assert only(doc, "//parm[@name='UPN']").get("value") == hostile
    assert not doc.xpath("//characteristic[@type='Evil']")


def test_certificate_authority_rows_are_accepted_for_the_chain(issued):
    _root, _issuing, device_cert = issued
    root_row, issuing_row = ca.active_authorities()

    doc = document(issued, root=root_row, issuing=issuing_row)

    store = doc[0]
    assert types(only(store, "characteristic[@type='Root']/characteristic[@type='System']")) == [root_row.thumbprint]
    assert types(only(store, "characteristic[@type='CA']/characteristic[@type='System']")) == [issuing_row.thumbprint]


@pytest.mark.parametrize("override", [
    {"enrollment_type": "Partial"}, {"device_id": ""}, {"provider_id": ""}, {"client_secret": ""},
    {"server_secret": ""}, {"management_url": ""},
])
def test_missing_or_unknown_values_are_refused(issued, override):
    with pytest.raises(ValueError):
        document(issued, **override)


def test_robo_renewal_schedule_sits_under_my_wstep_renew(issued):
    doc = document(issued, renew_period_days=45, retry_interval_days=5)

    renew = only(doc, "characteristic[@type='CertificateStore']/characteristic[@type='My']"
                      "/characteristic[@type='WSTEP']/characteristic[@type='Renew']")
    assert parm_items(renew) == [
        ("ROBOSupport", "true", "boolean"),
        ("RenewPeriod", "45", "integer"),
        ("RetryInterval", "5", "integer"),
    ]
    assert len(doc.xpath("//characteristic[@type='WSTEP']")) == 1


@pytest.mark.parametrize("period, retry", [(0, 0), (60, 0), (60, 61), (1001, 4)])
def test_a_renewal_schedule_windows_would_refuse_is_refused(issued, period, retry):
    with pytest.raises(ValueError, match="renewal schedule"):
        document(issued, renew_period_days=period, retry_interval_days=retry)


@pytest.mark.parametrize("enrollment_type, store", [("Full", "User"), ("Device", "System")])
def test_renewal_document_holds_only_the_certificates_and_the_provider_id(issued, enrollment_type, store):
    root, issuing, device_cert = issued

    doc = etree.fromstring(build_renewal_document(root=root, issuing=issuing, device_cert=device_cert,
                                                  enrollment_type=enrollment_type, provider_id="mdmportal"))

    assert types(doc) == ["CertificateStore", "APPLICATION"]
    assert types(doc[0]) == ["Root", "CA", "My"]
    my = only(doc, "characteristic[@type='CertificateStore']/characteristic[@type='My']")
    assert types(my) == [store]
    assert types(my[0]) == [ca.thumbprint(device_cert), "PrivateKeyContainer"]
    assert encoded(my[0][0]) == device_cert
    assert parm_items(doc[1]) == [("PROVIDER-ID", "mdmportal", None)]
    assert types(doc[1]) == []


def test_renewal_document_refuses_an_unknown_enrollment_type(issued):
    root, issuing, device_cert = issued
    with pytest.raises(ValueError):
        build_renewal_document(root=root, issuing=issuing, device_cert=device_cert, enrollment_type="Partial",
                               provider_id="mdmportal")
