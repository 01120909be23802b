"""Helpers for the enrollment endpoint tests: SOAP bodies from the recorded shapes in
tests/fixtures/enrollment/ and readers for the replies."""
import base64
from pathlib import Path
from string import Template

from django.urls import reverse
from lxml import etree

from enrollment.soap import DIAG_NS, DISCOVERY_NS, ENROLLMENT_NS, SOAP_NS, WSA_NS
from enrollment.wstep import ISSUE
from simulator import build_windows_csr

FIXTURES = Path(__file__).parent / "fixtures" / "enrollment"
DEVICE_ID = "1E08C6E95D8BB843B1278FF45BC60CC6"
HW_DEV_ID = "A3D5F2B9C1E04D7F8A6B3C2D1E0F9A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
NS = {"s": SOAP_NS, "e": ENROLLMENT_NS, "d": DISCOVERY_NS, "a": WSA_NS, "diag": DIAG_NS}


def fixture(name, **values):
    return Template((FIXTURES / name).read_text()).substitute(values)


def discover_body(*, namespace=DISCOVERY_NS, version="4.0", policies=("OnPremise",)):
    words = "".join(f"<AuthPolicy>{p}</AuthPolicy>" for p in policies)
    return fixture("discover.xml", namespace=namespace, version=version, policies=words).encode()


def get_policies_body(username, password):
    return fixture("get_policies_password.xml", username=username, password=password).encode()


def get_policies_token_body(token):
    return fixture("get_policies_token.xml", token=b64(token)).encode()


def password_security(username, password):
    return fixture("security_password.xml", username=username, password=password)


def token_security(token):
    return fixture("security_token.xml", token=b64(token))


def b64(value):
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def windows_csr(key, device_id=DEVICE_ID, hash_name="sha1"):
    return b64(build_windows_csr(key, device_id, hash_name=hash_name))


def rst_body(security, csr, *, device_id=DEVICE_ID, hw_dev_id=HW_DEV_ID, enrollment_type="Full", os_edition="48",
             device_name="PC-ALICE", request_type=ISSUE):
    return fixture("rst.xml", security=security, csr=csr, device_id=device_id, hw_dev_id=hw_dev_id,
                   enrollment_type=enrollment_type, os_edition=os_edition, device_name=device_name,
                   request_type=request_type).encode()


def service_url(organisation, name):
    return reverse(f"enrollment:{name}", kwargs={"key": organisation.enrollment_key})


def post(client, url, body):
    return client.post(url, body, content_type=CONTENT_TYPE, secure=True)


def parse(response):
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == CONTENT_TYPE
    assert int(response["Content-Length"]) == len(response.content)
    return etree.fromstring(response.content)


def fault_of(response):
    """(subcode, reason, error type or None) of a SOAP fault reply."""
    root = parse(response)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, response.content[:800]
    error_type = root.findtext(".//e:ErrorType", namespaces=NS)
    return (fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS),
            fault.findtext("s:Reason/s:Text", namespaces=NS), error_type)
