"""The end-user portal: /go, signing in and out, following an invitation, the enrollment page, resetting a
forgotten password."""
from urllib.parse import quote, urlencode, urlsplit

from axes.helpers import get_client_ip_address
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import lockout
from accounts.models import AuditEvent, Organisation
from accounts.registration import RenewalNotAllowed, effective_registration_settings, pins

from . import password_reset as resets
from . import sending
from .models import InvalidTransition, Invitation
from .portal_forms import (
    ContinueForm, InvitationSetPasswordForm, InvitationSignInForm, PasswordResetRequestForm, SignInForm,
)

# The backend that checks passwords; login() must be told which one when it is not authenticate()'s pick.
PASSWORD_BACKEND = "django.contrib.auth.backends.ModelBackend"


def go(request):
    """The address users are given: it leads to their enrollment page, through sign-in if needed."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("invitations:enroll"))
    return redirect("invitations:enroll")


class SignInView(auth_views.LoginView):
    """Django's LoginView (safe `next` handling) with our email-or-username form."""

    template_name = "invitations/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def get_redirect_url(self):
        # A `next` back to this page would make LoginView raise for a signed-in user (a 500).
        url = super().get_redirect_url()
        return "" if urlsplit(url).path == self.request.path else url

    def get_context_data(self, **kwargs):
        return super().get_context_data(organisation=Organisation.get(), **kwargs)


login = SignInView.as_view()

logout = auth_views.LogoutView.as_view(next_page="invitations:login")


def accept(request, token):
    """Follow an invitation link: set a password (or sign in), spend the token, go to /enroll."""
    email = sending.find_email_by_token(token)
    if email is None:
        return render(request, "invitations/invitation_invalid.html", status=404)
    invitation = email.invitation
    invitee = invitation.user
    unavailable = "replaced" if sending.is_superseded(email) else _unavailable_reason(invitation)
    if unavailable:
        return _render_in_language(request, invitee, "invitations/invitation_unavailable.html",
                                   {"reason": unavailable, "invitee": invitee}, status=410)
    if request.user.is_authenticated and request.user != invitee:
        return _render_in_language(request, invitee, "invitations/invitation_wrong_account.html",
                                   {"invitee": invitee}, status=403)
    ip = get_client_ip_address(request)
    sending.mark_opened(invitation, ip=ip)

    form_class, template = _accept_step(request, invitee)
    form = form_class(request, invitee, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            _spend(invitation, form, ip)
        except InvalidTransition:
            # The invitation changed since the checks above (used a moment earlier, revoked, expired).
            invitation.refresh_from_db()
            return _render_in_language(request, invitee, "invitations/invitation_unavailable.html",
                                       {"reason": _unavailable_reason(invitation) or "used", "invitee": invitee},
                                       status=410)
        auth_login(request, invitee, backend=PASSWORD_BACKEND)
        return redirect("invitations:enroll")
    context = {"form": form, "invitee": invitee, "organisation": Organisation.get()}
    return _render_in_language(request, invitee, template, context)


@never_cache
@login_required
def enroll(request):
    """What the user needs to enroll a Windows PC or a HoloLens 2, in the user's language. A user who
    enrolls with a registration PIN and has none usable gets one, shown this once."""
    new_pin = None
    if effective_registration_settings(request.user).requires_pin and pins().usable_pin(request.user) is None:
        new_pin = pins().issue(request.user, actor=request.user, ip=get_client_ip_address(request))
    return _enroll_page(request, new_pin)


@never_cache
@login_required
@require_POST
def request_pin(request):
    """"Request a new PIN": replaces the user's PIN and shows the new one once (rendered, not
    redirected, so the PIN in clear is never stored to survive a redirect)."""
    try:
        new_pin = pins().renew(request.user, ip=get_client_ip_address(request))
    except RenewalNotAllowed:
        return _enroll_page(request, None, renewal_refused=True, status=403)
    return _enroll_page(request, new_pin)


def _enroll_page(request, new_pin, renewal_refused=False, status=200):
    user = request.user
    organisation = Organisation.get()
    registration = effective_registration_settings(user)
    context = {
        "registration": registration,
        "renewal_refused": renewal_refused,
        "new_pin": new_pin.code if new_pin else None,
        "pin": new_pin.record if new_pin else (pins().usable_pin(user) if registration.requires_pin else None),
        "organisation": organisation,
        "enrollment_url": organisation.enrollment_url,
        "email": user.email,
        "enrollment_username": user.enrollment_username,
        "username_differs": user.enrollment_username.lower() != user.email.lower(),
        "one_click_url": enrollment_link(user.enrollment_username, organisation.enrollment_url),
    }
    return _render_in_language(request, user, "invitations/enroll.html", context, status=status)


def enrollment_link(username, server_url):
    """The ms-device-enrollment: link that opens Windows' "Set up a work or school account" dialog
    prefilled for MDM-only enrollment (MS-MDE2 deep link; every value percent-encoded)."""
    query = urlencode({"mode": "mdm", "username": username, "servername": server_url}, quote_via=quote)
    return f"ms-device-enrollment:?{query}"


def _unavailable_reason(invitation):
    if invitation.revoked_at or not invitation.user.is_active:
        return "revoked"
    if invitation.accepted_at or invitation.completed_at:
        return "used"
    if invitation.is_expired:
        return "expired"
    return None


def _accept_step(request, invitee):
    if request.user.is_authenticated:
        return ContinueForm, "invitations/invitation_continue.html"
    if invitee.has_usable_password():
        return InvitationSignInForm, "invitations/invitation_sign_in.html"
    return InvitationSetPasswordForm, "invitations/invitation_set_password.html"


def _spend(invitation, form, ip):
    """Accept the invitation and save the form together; the row lock makes the token single-use
    even when the same link is submitted twice at once."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        sending.accept(locked, ip=ip)
        form.save()


def _render_in_language(request, user, template, context=None, status=200):
    with translation.override(user.language):
        response = render(request, template, context, status=status)
    response.headers["Content-Language"] = user.language
    return response


@never_cache
def password_reset(request):
    """"Forgot your password?": the same answer for every address (invitations/password_reset.py)."""
    form = PasswordResetRequestForm(request.POST or None)
    throttled = False
    if request.method == "POST" and form.is_valid():
        if resets.request_reset(form.cleaned_data["email"], ip=get_client_ip_address(request)):
            return redirect("invitations:password_reset_sent")
        throttled = True
    return render(request, "invitations/password_reset.html",
                  {"form": form, "throttled": throttled, "organisation": Organisation.get()},
                  status=429 if throttled else 200)


def password_reset_sent(request):
    return render(request, "invitations/password_reset_sent.html", {"organisation": Organisation.get()})


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's view (the token leaves the URL for the session at once) with our page and form; a
    successful reset is audited and ends the account's sign-in lockout: the user has just proved they
    read the account's mailbox."""

    template_name = "invitations/password_reset_confirm.html"
    success_url = reverse_lazy("invitations:password_reset_done")
    post_reset_login = False

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.label_suffix = ""
        form.fields["new_password1"].label = _("New password")
        form.fields["new_password2"].label = _("Type it again")
        return form

    def form_valid(self, form):
        response = super().form_valid(form)
        lockout.end_lockout(self.user.email)
        AuditEvent.record(self.user, "password.reset", self.user, ip=get_client_ip_address(self.request))
        return response

    def get_context_data(self, **kwargs):
        return super().get_context_data(organisation=Organisation.get(), **kwargs)


password_reset_confirm = PasswordResetConfirmView.as_view()


def password_reset_done(request):
    return render(request, "invitations/password_reset_done.html", {"organisation": Organisation.get()})
