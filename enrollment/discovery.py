"""MS-MDE2 3.1.4.1 Discover: which sign-in Windows uses and where the policy and enrollment
services are.

Entra ID (enrollment/entra.py): Entra-joined devices and work accounts can only enroll Federated, yet Windows'
Settings offers OnPremise and Federated in every Discover (MS-MDE2 AuthPolicies), so the offer
cannot tell an Entra client from a local user. The EmailAddress does: while Entra enrollment is on,
an address of one of the tenants' verified domains (EntraSettings.domains, matched whatever its
case; every address while none is listed; an empty one, which only a user-less Entra device sends)
is answered Federated whatever the organisation's sign-in method; any other address keeps the
organisation's own method, so local users keep Windows' own password box. A Federated answer
still carries AuthenticationServiceUrl, our sign-in page: MS-MDE2 requires it, Entra clients skip
it and send their Entra token instead, other devices sign in there as their registration settings
say. Devices offering only OnPremise (provisioning packages) keep OnPremise."""
import logging
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from lxml import etree
from lxml.builder import ElementMaker

from accounts.models import Organisation
from accounts.registration import effective_registration_settings

from . import entra, ppkg, soap
from .soap import DISCOVERY_NAMESPACES, DISCOVERY_NS, Fault, SoapFault, text

logger = logging.getLogger(__name__)

D = ElementMaker(namespace=DISCOVERY_NS, nsmap={None: DISCOVERY_NS})

ONPREMISE = "OnPremise"
FEDERATED = "Federated"
CERTIFICATE = "Certificate"
# Organisation.auth_policy -> the AuthPolicy we answer.
POLICIES = {"onpremise": ONPREMISE, "federated": FEDERATED}
KNOWN_POLICIES = {p.lower(): p for p in (ONPREMISE, FEDERATED, CERTIFICATE)}


def offered_policies(request_element, ns):
    """AuthPolicies as AuthPolicy children, or (one doc sample) the word directly inside AuthPolicies."""
    container = request_element.find(f"{{{ns}}}AuthPolicies")
    if container is None:
        return set()
    words = [child.text for child in container if etree.QName(child).localname == "AuthPolicy"]
    words.append(container.text)
    return {KNOWN_POLICIES[w.strip().lower()] for w in words if w and w.strip().lower() in KNOWN_POLICIES}


def enrollment_version(requested):
    """min(ours, RequestVersion), formatted like Windows writes it ("4.0")."""
    ours = Decimal(settings.ENROLLMENT_MAX_VERSION)
    if not requested:
        return f"{ours:.1f}"
    try:
        theirs = Decimal(requested)
    except InvalidOperation:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The enrollment request is not valid.",
                        log_detail=f"RequestVersion {requested!r}") from None
    if not theirs.is_finite() or theirs <= 0:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The enrollment request is not valid.",
                        log_detail=f"RequestVersion {requested!r}")
    return f"{min(ours, theirs):.1f}"


def service_url(base_url, name, key):
    """Absolute URL of one of our services, carrying the enrollment key of the discovery URL used, so
    regenerating the enrollment URL stops enrollments already under way too. All on one host (MS-MDE2 3.1.4.1)."""
    return base_url + reverse(f"enrollment:{name}", kwargs={"key": key})


def needs_sign_in_page(email):
    """Whether the account Windows names in EmailAddress (may be empty) enrolls with PIN and password."""
    user = get_user_model().objects.for_login(email) if email else None
    return user is not None and effective_registration_settings(user).needs_sign_in_page


def handle(request, envelope, key):
    discover = envelope.body
    ns = etree.QName(discover).namespace
    if etree.QName(discover).localname != "Discover" or ns not in DISCOVERY_NAMESPACES:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The enrollment request is not valid.",
                        log_detail=f"body element {discover.tag}")
    request_element = discover.find(f"{{{ns}}}request")
    if request_element is None:
        raise SoapFault(Fault.MESSAGE_FORMAT, "The enrollment request is not valid.", log_detail="no request")
    version = enrollment_version(text(request_element, f"{{{ns}}}RequestVersion"))
    offered = offered_policies(request_element, ns)
    email = text(request_element, f"{{{ns}}}EmailAddress")
    organisation = Organisation.get()
    policy = POLICIES[organisation.auth_policy]
    if policy == ONPREMISE and needs_sign_in_page(email):
        # "PIN and password": Windows' on-premise flow (MS-MDE2 3.4.4.1.1.1.3) has a single secret box, whose value
        # travels as the UsernameToken password, so it cannot carry two secrets. The federated flow
        # (MS-MDE2 3.2) opens our sign-in page, which asks for both; its token then stands for them in
        # GetPolicies and RST. So these users get Federated even when the organisation is on-premise.
        if FEDERATED not in offered:
            raise SoapFault(
                Fault.AUTHORIZATION,
                "Your account enrolls with a registration PIN and your password, typed on the organisation's "
                "sign-in page, and this device did not offer web sign-in. Ask your administrator for help.",
                error_type=soap.ErrorType.NOT_SUPPORTED, log_detail=f"PIN and password user; offered {sorted(offered)}",
            )
        policy = FEDERATED
    if policy != FEDERATED and FEDERATED in offered and entra.takes_address(email):
        policy = FEDERATED
    if policy not in offered:
        # Provisioning packages sign in on-premise whatever the organisation's policy (see ppkg.py).
        policy = ppkg.discovery_policy(offered) or policy
    if policy not in offered:
        raise SoapFault(
            Fault.AUTHORIZATION,
            f"This server requires the {policy} sign-in, which this device did not offer.",
            error_type=soap.ErrorType.NOT_SUPPORTED, log_detail=f"offered {sorted(offered)}",
        )
    logger.info("discover: %s answered %s v%s (email %s, OS edition %s)", envelope.activity_id, policy, version,
                email or "-", text(request_element, f"{{{ns}}}OSEdition") or "-")
    base_url = organisation.base_url
    result = D.DiscoverResult(
        D.AuthPolicy(policy),
        D.EnrollmentVersion(version),
        D.EnrollmentPolicyServiceUrl(service_url(base_url, "policy", key)),
        D.EnrollmentServiceUrl(service_url(base_url, "enrollment", key)),
    )
    if policy == FEDERATED:
        result.append(D.AuthenticationServiceUrl(service_url(base_url, "signin", key)))
    header = soap.reply_header(soap.DISCOVER_RESPONSE, envelope, activity=True)
    return soap.S.Envelope(header, soap.soap_body(D.DiscoverResponse(result)))
