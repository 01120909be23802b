"""Device endpoints of enrollment: thin views over the SOAP services (one module per message, wired here)."""
import dataclasses
import logging

from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import Organisation

from . import discovery as discovery_service
from . import policy as policy_service
from . import renewal
from . import soap
from . import troubleshooting
from . import wstep

logger = logging.getLogger(__name__)

RETIRED_MESSAGE = ("This enrollment address is no longer valid. Ask your administrator for a new invitation "
                   "and use the address it gives.")


def request_token(request, envelope, key):
    """The RST carries enrollments (RequestType Issue, MS-MDE2 3.4) and ROBO renewals
    (Renew, MS-MDE2 3.5)."""
    if wstep.is_renewal(envelope.body):
        return renewal.handle(request, envelope, key)
    return wstep.handle(request, envelope, key)


# Every refused request is recorded with what it claims, for the troubleshooting pages.
SERVICES = {
    "discovery": soap.Service("discovery", soap.DISCOVER, soap.DISCOVER_RESPONSE, discovery_service.handle,
                              troubleshooting.record_refusal),
    "policy": soap.Service("policy", soap.GET_POLICIES, soap.GET_POLICIES_RESPONSE, policy_service.handle,
                           troubleshooting.record_refusal),
    "enrollment": soap.Service("enrollment", soap.REQUEST_TOKEN, soap.REQUEST_TOKEN_RESPONSE, request_token,
                               troubleshooting.record_refusal),
}


def unavailable(request, exception):
    """A device's answer while the database is down (mdmportal.unavailable): the SOAP fault of the
    service it called, a plain 503 for the probe (the client retries on its schedule), None for the
    sign-in page, which gets the 503 page."""
    name = request.resolver_match.url_name
    service = SERVICES.get("discovery" if name == "autodiscovery" else name)
    if service is not None and request.method == "POST":
        return soap.unavailable_response(request, service, exception)
    if name == "signin":
        return None
    return HttpResponse("The server is temporarily unavailable.\n", status=503, content_type="text/plain; charset=utf-8")


def key_state(key):
    """'current', 'retired' or 'unknown' for the key in the URL; the fixed autodiscovery URL (no key)
    is always current."""
    if key is None:
        return "current"
    return Organisation.get().key_state(key)


def refuse_retired_key(request, envelope, key):
    if envelope.action == soap.REQUEST_TOKEN and wstep.is_renewal(envelope.body):
        # A new key stops new enrollments, not the renewals of devices enrolled through the old one:
        # they keep the URL they enrolled with and prove who they are by their certificate.
        return renewal.handle(request, envelope, key)
    raise soap.SoapFault(soap.Fault.AUTHORIZATION, RETIRED_MESSAGE, error_type=soap.ErrorType.CUSTOM_SERVER_ERROR,
                         log_detail="retired enrollment key")


def serve(request, name, key):
    # Key check, service, authentication and certificate issue all read the organisation: once.
    with Organisation.read_once():
        return _serve(request, name, key)


def _serve(request, name, key):
    service = SERVICES[name]
    state = key_state(key)
    if state == "unknown":
        raise Http404("unknown enrollment key")
    if state == "retired":
        # Still a well-formed SOAP answer, so that Windows shows the user what to do.
        return soap.serve(request, dataclasses.replace(service, handle=refuse_retired_key), key)
    return soap.serve(request, service, key or Organisation.get().enrollment_key)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def discovery(request, key=None):
    if request.method == "POST":
        return serve(request, "discovery", key)
    # The probe Windows sends before its Discover (MS-MDE2 3.1): an empty 200.
    state = key_state(key)
    if state == "unknown":
        raise Http404("unknown enrollment key")
    if state == "retired":
        return HttpResponse(RETIRED_MESSAGE + "\n", status=410, content_type="text/plain; charset=utf-8")
    response = HttpResponse(b"", content_type="text/html")
    response["Content-Length"] = "0"
    return response


@csrf_exempt
@require_http_methods(["POST"])
def policy(request, key):
    return serve(request, "policy", key)


@csrf_exempt
@require_http_methods(["POST"])
def enrollment(request, key):
    return serve(request, "enrollment", key)

