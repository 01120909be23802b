"""Entra ID access tokens for the tests (shaped as Entra issues them), signed with a test RSA key whose JWKS the tests
configure (JwksSetFactory), plus the SOAP bodies that carry them."""
import base64
import hashlib
import hmac
import json
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization

from tests.enrollment_soap import DEVICE_ID, fixture, post, rst_body, service_url, windows_csr
from tests.factories_enrollment import TEST_APP_ID_URI, TEST_TENANT, rsa_key

KID = "test-key-1"  # JwksSetFactory's default kid, holding rsa_key(SIGNING_KEY)
SIGNING_KEY = 40
OTHER_KEY = 41
USER_OID = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
DEVICE_GUID = "6f2b3c1a-8d7e-4f60-9a1b-2c3d4e5f6a7b"
UPN = "dana@contoso.com"


def claims(**overrides):
    """A v1 Entra access token for the MDM app, as Windows sends it after an Entra join, with Entra's
    unique token identifier (uti) fresh each time. An override of None removes the claim."""
    now = int(time.time())
    values = {
        "aud": TEST_APP_ID_URI, "iss": f"https://sts.windows.net/{TEST_TENANT}/", "iat": now - 60, "nbf": now - 60,
        "exp": now + 3600, "tid": TEST_TENANT, "oid": USER_OID, "upn": UPN, "unique_name": UPN,
        "name": "Dana Scully", "scp": "mdm_delegation", "deviceid": DEVICE_GUID, "ver": "1.0",
        "uti": secrets.token_urlsafe(16),
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def make_token(*, key_index=SIGNING_KEY, kid=KID, **overrides):
    return jwt.encode(claims(**overrides), rsa_key(key_index), algorithm="RS256", headers={"kid": kid})


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(**overrides):
    """alg=none: a token anyone can write."""
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
    return f"{header}.{_b64url(json.dumps(claims(**overrides)).encode())}."


def hs256_with_public_key(**overrides):
    """The classic confusion attack: HS256 'signed' with the RSA public key (which is public) as the
    HMAC secret, hoping the server verifies with whatever the header names."""
    public_pem = rsa_key(SIGNING_KEY).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    payload = _b64url(json.dumps(claims(**overrides)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def b64_token(token):
    return base64.b64encode(token.encode()).decode()


def get_policies_body(token=None, *, encoded=None):
    return fixture("get_policies_jwt.xml", token=encoded if encoded is not None else b64_token(token)).encode()


def rst_entra_body(token, *, device_key=50, enrollment_type="Full", enrollment_data="", device_id=DEVICE_ID,
                   hw_dev_id=None, encoded=None):
    header = fixture("security_jwt.xml", token=encoded if encoded is not None else b64_token(token))
    extra = {"hw_dev_id": hw_dev_id} if hw_dev_id else {}
    body = rst_body(header, windows_csr(rsa_key(device_key), device_id=device_id), device_id=device_id,
                    enrollment_type=enrollment_type, **extra)
    empty = b'<ac:ContextItem Name="EnrollmentData"><ac:Value></ac:Value></ac:ContextItem>'
    assert empty in body
    return body.replace(empty, f'<ac:ContextItem Name="EnrollmentData"><ac:Value>{enrollment_data}</ac:Value>'
                               '</ac:ContextItem>'.encode())


def security(token):
    """The wsse:Security header of GetPolicies and RST carrying the token."""
    return fixture("security_jwt.xml", token=b64_token(token))


def get_policies(client, organisation, token=None, **kwargs):
    return post(client, service_url(organisation, "policy"), get_policies_body(token, **kwargs))


def enroll(client, organisation, token=None, **kwargs):
    return post(client, service_url(organisation, "enrollment"), rst_entra_body(token, **kwargs))
