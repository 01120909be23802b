"""MS-XCEP GetPolicies (MS-MDE2 3.3): the certificate policy Windows builds its CSR from. Windows reads
only minimalKeyLength, hashAlgorithmOIDReference (resolved in oIDs) and cryptoProviders."""
import logging

from django.conf import settings
from lxml import etree
from lxml.builder import ElementMaker

from . import auth, soap
from .soap import XCEP_NS, XSI_NS, Fault, SoapFault

logger = logging.getLogger(__name__)

X = ElementMaker(namespace=XCEP_NS, nsmap={None: XCEP_NS})
NIL = {f"{{{XSI_NS}}}nil": "true"}

MINIMAL_KEY_LENGTH = 2048
SHA256 = ("2.16.840.1.101.3.4.2.1", "szOID_NIST_sha256")
DAY = 24 * 60 * 60


def nil(name):
    return X(name, **NIL)


def policies_response():
    validity_days = getattr(settings, "DEVICE_CERT_VALIDITY_DAYS", 365)
    attributes = X.attributes(
        X.commonName(settings.ENROLLMENT_PROVIDER_ID),
        X.policySchema("3"),
        X.certificateValidity(
            X.validityPeriodSeconds(str(validity_days * DAY)),
            # The same window the provisioning document's WSTEP/Renew/RenewPeriod gives (CertificateStore CSP).
            X.renewalPeriodSeconds(str(settings.ENROLLMENT_RENEW_PERIOD_DAYS * DAY)),
        ),
        X.permission(X.enroll("true"), X.autoEnroll("false")),
        X.privateKeyAttributes(
            X.minimalKeyLength(str(MINIMAL_KEY_LENGTH)),
            nil("keySpec"), nil("keyUsageProperty"), nil("permissions"),
            nil("algorithmOIDReference"), nil("cryptoProviders"),
        ),
        X.revision(X.majorRevision("101"), X.minorRevision("0")),
        nil("supersededPolicies"), nil("privateKeyFlags"), nil("subjectNameFlags"),
        nil("enrollmentFlags"), nil("generalFlags"),
        X.hashAlgorithmOIDReference("0"),
        nil("rARequirements"), nil("keyArchivalAttributes"), nil("extensions"),
    )
    return X.GetPoliciesResponse(
        X.response(
            X.policyID(), nil("policyFriendlyName"), nil("nextUpdateHours"), nil("policiesNotChanged"),
            X.policies(X.policy(X.policyOIDReference("0"), nil("cAs"), attributes)),
        ),
        nil("cAs"),
        X.oIDs(X.oID(X.value(SHA256[0]), X.group("1"), X.oIDReferenceID("0"), X.defaultName(SHA256[1]))),
    )


def client_ip(request):
    return request.META.get("REMOTE_ADDR") or None


def handle(request, envelope, key):
    if etree.QName(envelope.body) != etree.QName(XCEP_NS, "GetPolicies"):
        raise SoapFault(Fault.MESSAGE_FORMAT, "The policy request is not valid.",
                        log_detail=f"body element {envelope.body.tag}")
    # A refusal is audited with what the request claims by enrollment/troubleshooting.py (soap.serve).
    identity = auth.authenticate_envelope(request, envelope)
    logger.info("policy: %s sent to user %s (%s)", envelope.activity_id, getattr(identity.user, "pk", "-"),
                identity.method)
    header = soap.reply_header(soap.GET_POLICIES_RESPONSE, envelope)
    return soap.S.Envelope(header, soap.soap_body(policies_response()))
