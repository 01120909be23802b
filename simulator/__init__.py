"""A Windows enrollment client that speaks the real HTTP protocol, for smoke tests and benchmarks.

It does what a Windows 10/11 PC or a HoloLens 2 does when the user types an email and a server
address in Settings > Accounts > Access work or school: the discovery probe and Discover (MS-MDE2 3.1),
the federated sign-in (MS-MDE2 3.2) or the on-premise UsernameToken, GetPolicies (MS-MDE2 3.3, MS-XCEP),
and the RequestSecurityToken with a Windows-shaped CSR (MS-MDE2 3.4, MS-WSTEP), then checks every
answer as strictly as Windows would, down to the provisioning document (MS-MDE2 2.2.9.1). Afterwards it
can renew its certificate as Windows' ROBO renewal does (MS-MDE2 3.5) and check in over OMA-DM (MS-MDM).

With an Entra ID token ("Microsoft Entra integration with MDM") it plays an Entra-joined PC or a work
account instead: optionally the terms-of-use page (Bearer token in, OpaqueBlob out, sent back as the
EnrollmentData item), then GetPolicies and RST carrying the token as a JWT BinarySecurityToken.

The protocol constants are spelled out here rather than imported from the server code on purpose:
a client that shared the server's literals could not catch a typo in them. The package imports
nothing of the server (tests/test_simulator_independence.py checks it). `python -m simulator` is its
command line (cli.py), which the server's `manage.py simulate_device` also runs.

    device.py        Simulator: one simulated device, its enrollment steps, renewal, check-ins, switches
    soap.py          namespaces and actions, the Discovery URL, Discover/GetPolicies/RST answers read
    signin.py        the federated sign-in page and the Entra terms-of-use page
    provisioning.py  the provisioning document and the renewal answer, checked
    certificates.py  the Windows-shaped certificate request, thumbprints, the renewal's PKCS#7
    transport.py     urllib openers: no redirects, --resolve, TLS, the X-SSL-Client-Cert header
    omadm.py         ManagementClient: OMA-DM sessions, the device tree, answers to the server's commands
    results.py       what a run returns; errors.py what a failed check raises
    cli.py           the command line: options, the run, its summary or --json result
"""
from .certificates import build_windows_csr, signed_renewal_request, thumbprint
from .device import ENROLLMENT_DATA_CHOICES, MSI_STALL_MODES, Simulator
from .errors import SimulatorError, SoapFaultError
from .omadm import ManagementClient, appsrv_credentials, fake_device_tree, md5_credentials
from .provisioning import Provisioning, RenewalSchedule, validate_provisioning_document, validate_renewal_document
from .results import CheckinResult, EnrollmentResult, RenewalResult, ServerMessage, Step
from .signin import fill_sign_in_form, form_post_headers, jwt_claims, read_auto_post, sign_in_url
from .soap import (AC_NS, BASE64_BINARY, DISCOVER_ACTION, DISCOVER_RESPONSE_ACTION, DISCOVERY_NS, DISCOVERY_PATH,
                   ENROLLMENT_NS, GET_POLICIES_RESPONSE_ACTION, PASSWORD_TEXT, PKCS10, PROV_DOC, RSTRC_ACTION,
                   SOAP12_NS, SOAP_CONTENT_TYPE, TOKEN_TYPE, USER_TOKEN, WSA_NS, WSSE_NS, WST_NS, XCEP_NS, XSI_NS,
                   Discovery, Policy, discovery_url, parse_discover_response, parse_enrollment_response,
                   parse_policies_response, read_envelope)
from .transport import CLIENT_CERT_HEADER, client_certificate_header, parse_resolve

__all__ = [
    "AC_NS", "BASE64_BINARY", "CLIENT_CERT_HEADER", "DISCOVERY_NS", "DISCOVERY_PATH", "DISCOVER_ACTION",
    "DISCOVER_RESPONSE_ACTION", "ENROLLMENT_DATA_CHOICES", "ENROLLMENT_NS", "GET_POLICIES_RESPONSE_ACTION",
    "MSI_STALL_MODES", "PASSWORD_TEXT", "PKCS10", "PROV_DOC", "RSTRC_ACTION", "SOAP12_NS", "SOAP_CONTENT_TYPE",
    "TOKEN_TYPE", "USER_TOKEN", "WSA_NS", "WSSE_NS", "WST_NS", "XCEP_NS", "XSI_NS",
    "CheckinResult", "Discovery", "EnrollmentResult", "ManagementClient", "Policy", "Provisioning", "RenewalResult",
    "RenewalSchedule", "ServerMessage", "Simulator", "SimulatorError", "SoapFaultError", "Step",
    "appsrv_credentials", "build_windows_csr", "client_certificate_header", "discovery_url", "fake_device_tree",
    "fill_sign_in_form", "form_post_headers", "jwt_claims", "md5_credentials", "parse_discover_response",
    "parse_enrollment_response", "parse_policies_response", "parse_resolve", "read_auto_post", "read_envelope", "sign_in_url",
    "signed_renewal_request", "thumbprint", "validate_provisioning_document", "validate_renewal_document",
]
