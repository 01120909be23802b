"""The terms-of-use page of Entra ID enrollment (Microsoft's "Terms
of Use protocol semantics"): Windows opens it in a web view with the user's Entra token, the user
accepts (or, outside an Entra join, declines), and we send Windows back to its redirect_uri.

- GET `?redirect_uri=…&client-request-id=…&api-version=1.0[&mode=azureadjoin]` with
  `Authorization: Bearer <Entra token>`; `CXH-HOST: FRX` (OOBE, dark page) or `MOSET` (Settings,
  light page). Accept-Language picks French or English.
- A redirect_uri we do not allow is never redirected to: the visitor gets a 400 page. Allowed: only
  where Windows waits for the answer, the Entra broker (`ms-appx-web://Microsoft.AAD.BrokerPlugin…`)
  and `ms-aadj-redir://auth/mdm`. Never a web address: a redirect to any https:// page would make
  this an open redirect carrying our host name (OWASP "Unvalidated Redirects and Forwards").
- Every other problem is a 302 to redirect_uri with `error` and an English `error_description`
  (unsupported api-version → invalid_request, token refused → unauthorized_client, our failure →
  server_error).
- The page posts the answer back to us with a signed state (the bearer token is not sent again);
  accept → `IsAccepted=true&OpaqueBlob=…&client-request-id=…`, decline → `IsAccepted=false`.
"""
import logging
import urllib.parse

from django.core import signing
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import AuditEvent, Organisation
from mdmportal import csp

from . import entra
from .models import EntraSettings

logger = logging.getLogger(__name__)

API_VERSION = "1.0"
JOIN_MODE = "azureadjoin"
OOBE_HOST = "FRX"  # CXH-HOST of the out-of-box experience; "MOSET" is Settings
BROKER_HOST = "microsoft.aad.brokerplugin"
MAX_REDIRECT_URI = 2048
MAX_REQUEST_ID = 200
STATE_SALT = "enrollment.entra-terms-page"
STATE_SECONDS = 30 * 60  # time to read the terms


class DeviceRedirect(HttpResponseRedirect):
    """A redirect back into Windows: Django allows only web schemes by default."""

    allowed_schemes = ["ms-appx-web", "ms-aadj-redir"]


def valid_redirect_uri(value):
    """Only where Windows waits for the answer; never https:, javascript:, data:, http: or anything else."""
    if not value or len(value) > MAX_REDIRECT_URI or not value.isprintable() or "\\" in value:
        return False
    if any(character.isspace() for character in value):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        return False
    if parts.fragment or parts.username is not None or parts.password is not None or not hostname:
        return False
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    if scheme == "ms-appx-web":
        return netloc == BROKER_HOST
    if scheme == "ms-aadj-redir":
        return netloc == "auth" and parts.path.lower() == "/mdm"
    return False


def answer(redirect_uri, params):
    """302 to redirect_uri with our parameters added, percent-encoded (spaces as %20)."""
    query = urllib.parse.urlencode([(name, value) for name, value in params if value is not None],
                                   quote_via=urllib.parse.quote)
    separator = "&" if "?" in redirect_uri else "?"
    response = DeviceRedirect(f"{redirect_uri}{separator}{query}")
    response["Cache-Control"] = "no-store"
    return response


def error(redirect_uri, code, description, request_id):
    return answer(redirect_uri, [("error", code), ("error_description", description),
                                 ("client-request-id", request_id or None)])


def render_page(request, template, context, status=200):
    dark = request.META.get("HTTP_CXH_HOST", "").strip().upper() == OOBE_HOST
    response = render(request, template, {**context, "dark": dark}, status=status)
    # The answer goes back to Windows by a form post to us and a redirect: form-action covers both.
    csp.allow(response, "form-action", "ms-appx-web:", "ms-aadj-redir:")
    response["Referrer-Policy"] = "no-referrer"
    return response


def refuse_page(request, message):
    return render_page(request, "enrollment/terms_error.html", {"message": message}, status=400)


def bearer_token(request):
    scheme, _space, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _audit(action, claims, request_id, request, **detail):
    user = entra.known_user(claims)
    AuditEvent.record(None, action, user, ip=request.META.get("REMOTE_ADDR") or None, detail={
        "tenant_id": claims.tenant_id, "object_id": claims.object_id, "upn": claims.upn,
        "client_request_id": request_id, **detail,
    })


@never_cache
@csrf_exempt  # the form carries our signed state, bound to a verified Entra token; it changes nothing
@require_http_methods(["GET", "POST"])
def terms_of_use(request):
    if request.method == "POST":
        return respond(request)
    redirect_uri = request.GET.get("redirect_uri", "")
    if not valid_redirect_uri(redirect_uri):
        logger.info("terms of use: refused redirect_uri %r", redirect_uri[:200])
        return refuse_page(request, _("This page can only be opened by Windows while it sets up a work "
                                      "account (invalid return address)."))
    request_id = request.GET.get("client-request-id", "")[:MAX_REQUEST_ID]
    if request.GET.get("api-version", "") != API_VERSION:
        return error(redirect_uri, "invalid_request", "unsupported version", request_id)
    try:
        return show_terms(request, redirect_uri, request_id)
    except Exception:
        logger.exception("terms of use: unexpected error, client-request-id=%s", request_id)
        return error(redirect_uri, "server_error", "internal service error", request_id)


def show_terms(request, redirect_uri, request_id):
    token = bearer_token(request)
    try:
        claims = entra.validate(token) if token else None
    except entra.TokenRejected as exc:
        AuditEvent.record_refusal("entra.terms_refused", ip=request.META.get("REMOTE_ADDR") or None, reason=exc.reason,
                                  detail={"reason": exc.reason, "client_request_id": request_id})
        return error(redirect_uri, "unauthorized_client", "The access token was not accepted.", request_id)
    if claims is None:
        AuditEvent.record_refusal("entra.terms_refused", ip=request.META.get("REMOTE_ADDR") or None,
                                  reason="no bearer token",
                                  detail={"reason": "no bearer token", "client_request_id": request_id})
        return error(redirect_uri, "unauthorized_client", "An access token is required.", request_id)
    user = entra.known_user(claims)
    if user is not None and not user.is_active:
        _audit("entra.terms_refused", claims, request_id, request, reason=f"inactive user {user.pk}")
        return error(redirect_uri, "unauthorized_client", "unauthorized user or tenant", request_id)
    joining = request.GET.get("mode") == JOIN_MODE or request.META.get("HTTP_CXH_HOST", "").strip().upper() == OOBE_HOST
    state = signing.dumps({
        "redirect_uri": redirect_uri, "rid": request_id, "join": joining,
        "tid": claims.tenant_id, "oid": claims.object_id, "upn": claims.upn,
    }, salt=STATE_SALT, compress=True)
    return render_page(request, "enrollment/terms.html", {
        "organisation": Organisation.get(), "terms_text": EntraSettings.get().terms_text, "upn": claims.upn,
        "can_decline": not joining, "state": state,
    })


def respond(request):
    """The user's answer, posted by the page."""
    try:
        state = signing.loads(request.POST.get("state", ""), salt=STATE_SALT, max_age=STATE_SECONDS)
        redirect_uri, request_id, joining = state["redirect_uri"], state["rid"], state["join"]
        claims = entra.EntraClaims(tenant_id=state["tid"], object_id=state["oid"], upn=state["upn"], name="",
                                   device_id="")
    except (signing.BadSignature, KeyError, TypeError):
        return refuse_page(request, _("This page has expired. Start setting up the work account again."))
    if not valid_redirect_uri(redirect_uri):
        return refuse_page(request, _("This page can only be opened by Windows while it sets up a work "
                                      "account (invalid return address)."))
    decision = request.POST.get("decision")
    if decision == "accept":
        _audit("entra.terms_accepted", claims, request_id, request)
        blob = entra.issue_terms_blob(claims, request_id, joining)
        return answer(redirect_uri, [("IsAccepted", "true"), ("OpaqueBlob", blob),
                                    ("client-request-id", request_id or None)])
    if decision == "decline" and not joining:
        _audit("entra.terms_declined", claims, request_id, request)
        return answer(redirect_uri, [("IsAccepted", "false"), ("client-request-id", request_id or None)])
    return error(redirect_uri, "invalid_request", "The terms of use cannot be declined while joining Entra ID."
                 if decision == "decline" else "unknown answer", request_id)
