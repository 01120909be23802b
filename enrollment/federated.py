"""The federated sign-in page (brief §3.2): Windows opens it in its web authentication broker at our
AuthenticationServiceUrl with `appru` and `login_hint`; we sign the user in and post a short-lived,
single-use token back to `appru` as `wresult`. Windows then sends that token in GetPolicies and RST."""
import logging
import secrets

from django import forms
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from invitations.models import AuditEvent

from . import auth
from .views import RETIRED_MESSAGE, key_state

logger = logging.getLogger(__name__)

APP_SCHEME = "ms-app://"
MAX_APPRU = 2048


class SignInForm(forms.Form):
    username = forms.CharField(label="Email or user name", max_length=254)
    password = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput, max_length=4096)
    appru = forms.CharField(widget=forms.HiddenInput, max_length=MAX_APPRU)


def valid_appru(value):
    """Only the broker's own ms-app:// callback: never reflect any other scheme (brief §3.2)."""
    return (bool(value) and len(value) <= MAX_APPRU and value[:len(APP_SCHEME)].lower() == APP_SCHEME
            and len(value) > len(APP_SCHEME) and value.isprintable() and not any(c.isspace() for c in value))


def render_page(request, template, context, status=200):
    nonce = secrets.token_urlsafe(16)
    response = render(request, template, {**context, "csp_nonce": nonce}, status=status)
    # The page may only run our inline script and post to the broker (or back to us).
    response["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "form-action 'self' ms-app:; base-uri 'none'; frame-ancestors 'none'"
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request, key):
    state = key_state(key)
    if state == "unknown":
        raise Http404("unknown enrollment key")
    if state == "retired":
        return render_page(request, "enrollment/signin_error.html", {"message": RETIRED_MESSAGE}, status=410)
    appru = (request.POST if request.method == "POST" else request.GET).get("appru", "")
    if not valid_appru(appru):
        logger.info("sign-in page: refused appru %r", appru[:200])
        return render_page(request, "enrollment/signin_error.html", {
            "message": "This page can only be opened by Windows while enrolling a device (invalid return address).",
        }, status=400)
    if request.method == "GET":
        form = SignInForm(initial={"appru": appru, "username": request.GET.get("login_hint", "")[:254]})
        return render_page(request, "enrollment/signin.html", {"form": form})
    form = SignInForm(request.POST)
    error = None
    if form.is_valid():
        user, error = check_credentials(request, form.cleaned_data["username"], form.cleaned_data["password"])
        if user is not None:
            AuditEvent.record(user, "enrollment.signed_in", user, ip=request.META.get("REMOTE_ADDR"))
            return render_page(request, "enrollment/signin_done.html", {
                "appru": appru, "wresult": auth.issue_token(user),
            })
    return render_page(request, "enrollment/signin.html", {"form": form, "error": error}, status=200)


def check_credentials(request, identity, password):
    """(user, None) or (None, message for the page). One password hash, through django-axes."""
    user = get_user_model().objects.for_login(identity)
    authenticated, locked_out = auth.authenticate_with_lockout(request, user.email if user else identity, password)
    if locked_out:
        return None, auth.LOCKED_OUT
    if authenticated is None:
        if user is not None and not user.is_active and user.check_password(password):
            return None, auth.NOT_ALLOWED
        return None, auth.BAD_CREDENTIALS
    return authenticated, None
