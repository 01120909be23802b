"""The federated sign-in page (MS-MDE2 3.2): Windows opens it in its web authentication broker at our
AuthenticationServiceUrl with `appru` and `login_hint`; we sign the user in and post a short-lived,
single-use token back to `appru` as `wresult`. Windows then sends that token in GetPolicies and RST."""
import logging

from django import forms
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import lockout
from accounts.models import AuditEvent
from accounts.registration import effective_registration_settings
from mdmportal import csp

from . import auth, troubleshooting
from .soap import SoapFault
from .device_views import RETIRED_MESSAGE, key_state

logger = logging.getLogger(__name__)

APP_SCHEME = "ms-app://"
MAX_APPRU = 2048


class SignInForm(forms.Form):
    username = forms.CharField(label="Email or user name", max_length=254)
    appru = forms.CharField(widget=forms.HiddenInput, max_length=MAX_APPRU)

    def __init__(self, *args, policy, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy
        if policy.requires_password:
            self.fields["password"] = forms.CharField(label="Password", strip=False, max_length=4096,
                                                      widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
        if policy.requires_pin:
            self.fields["pin"] = forms.CharField(
                label="Registration PIN", max_length=64,
                help_text="The one-time PIN from your invitation email or your enrollment page.",
                widget=forms.PasswordInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
            )


def policy_for(identity):
    user = get_user_model().objects.for_login(identity) if identity else None
    return effective_registration_settings(user)


def valid_appru(value):
    """Only the broker's own ms-app:// callback: never reflect any other scheme (MS-MDE2 3.2)."""
    return (bool(value) and len(value) <= MAX_APPRU and value[:len(APP_SCHEME)].lower() == APP_SCHEME
            and len(value) > len(APP_SCHEME) and value.isprintable() and not any(c.isspace() for c in value))


def render_page(request, template, context, status=200):
    response = render(request, template, context, status=status)
    # The site's policy (mdmportal/csp.py: our files and the nonced auto-submit script only), and the
    # page may post to the broker as well as back to us.
    csp.allow(response, "form-action", APP_SCHEME.removesuffix("//"))
    # Never leak the page's query string to the app, but keep the same-origin Referer/Origin that
    # Django's CSRF check needs on HTTPS ("no-referrer" would make browsers send Origin: null).
    response["Referrer-Policy"] = "same-origin"
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
        hint = request.GET.get("login_hint", "")[:254]
        form = SignInForm(initial={"appru": appru, "username": hint}, policy=policy_for(hint))
        return render_page(request, "enrollment/signin.html", {"form": form})
    form = SignInForm(request.POST, policy=policy_for(request.POST.get("username", "")[:254]))
    error = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            user, pin = check_credentials(request, data["username"], form.policy, data.get("password"), data.get("pin"))
        except SoapFault as refusal:
            error = refusal.reason
            reason = refusal.log_detail or refusal.reason
            # On the account it names, for its troubleshooting page (enrollment/troubleshooting.py).
            AuditEvent.record_refusal("enrollment.signin_failed", troubleshooting.claimed_user(
                troubleshooting.Claim(account=data["username"])), ip=request.META.get("REMOTE_ADDR") or None,
                reason=reason, detail={"reason": reason, "message": error, "account": data["username"][:254]})
        else:
            AuditEvent.record(user, "enrollment.signed_in", user, ip=request.META.get("REMOTE_ADDR"),
                              detail={"mode": form.policy.mode})
            return render_page(request, "enrollment/signin_done.html", {
                "appru": appru, "wresult": auth.issue_token(user, pin),
            })
    return render_page(request, "enrollment/signin.html", {"form": form, "error": error}, status=200)


def check_credentials(request, identity, policy, password, pin):
    """(user, RegistrationPin or None) when every secret the user's mode needs is right; raises
    SoapFault (whose reason the page shows) otherwise. Each secret goes through django-axes, and for
    "PIN and password" the page never says which of the two was wrong."""
    registration_pin = None
    try:
        if policy.requires_password:
            user = auth.verify_password(request, identity, password, complete=not policy.requires_pin)
        if policy.requires_pin:
            user, registration_pin = auth.verify_pin(request, identity, pin, complete=not policy.requires_password)
    except SoapFault as fault:
        if policy.requires_password and policy.requires_pin and fault.reason in (auth.BAD_CREDENTIALS, auth.BAD_PIN):
            fault.reason = auth.BAD_PIN_OR_PASSWORD
        raise
    if policy.requires_pin and policy.requires_password:
        lockout.reset_after_success(request, user.email)
    return user, registration_pin
