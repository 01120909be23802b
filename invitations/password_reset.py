"""Resetting a forgotten password by email: asked for by the user on /password/reset, or sent by an
administrator from the user's console page. Built on Django's password-reset tokens
(default_token_generator: bound to the password hash and last sign-in, so a link works once and
stops working when the password changes; valid PASSWORD_RESET_TIMEOUT seconds).

No account enumeration (OWASP Forgot Password Cheat Sheet): the page answers the same whatever the
address, and does the same work for an address with or without an account: it counts the request and
queues the Celery task with the address typed; the task, not the request, looks the account up and
sends the email (without a broker, as `./serve` runs, tasks run in the request and that last point
holds no longer). Requests are limited per address (PASSWORD_RESET_PER_ADDRESS an hour: over it the
page says to wait, which reveals nothing about accounts) and per email address typed
(PASSWORD_RESET_PER_EMAIL an hour: over it nothing is sent, silently), so the page can be used
neither to flood a mailbox nor to probe addresses quickly.

The email goes out like the invitations (EmailMultiAlternatives through the configured backend, from
DEFAULT_FROM_EMAIL, text and HTML, in the user's language).
"""
import hashlib
import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.lockout import over_rate
from accounts.models import AuditEvent, Organisation, User

from .sending import render_email

logger = logging.getLogger(__name__)

HOUR = 3600


def request_reset(email, *, ip=None):
    """A reset asked for on the portal's page. Returns False when this address asked too often (the page
    then says to wait); True otherwise, whether or not an email will go out."""
    if over_rate(f"password-reset:address:{ip or '-'}", settings.PASSWORD_RESET_PER_ADDRESS, HOUR):
        AuditEvent.record_refusal("password.reset_throttled", ip=ip, reason="address")
        return False
    typed = email.strip().lower()[:254]
    digest = hashlib.sha256(typed.encode()).hexdigest()
    if over_rate(f"password-reset:email:{digest}", settings.PASSWORD_RESET_PER_EMAIL, HOUR):
        AuditEvent.record_refusal("password.reset_throttled", ip=ip, reason="email")
        return True
    _queue(typed, ip=ip)
    return True


def send_reset(user, *, actor, ip=None):
    """A reset sent by an administrator from the user's page (audited as theirs)."""
    AuditEvent.record(actor, "password.reset_sent", user, ip=ip)
    _queue(user.email, ip=ip, by_administrator=True)


def _queue(email, *, ip, by_administrator=False):
    from . import tasks

    try:
        tasks.send_password_reset.delay(email, ip, by_administrator)
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
        logger.warning("broker unavailable, password reset email not queued: %s", exc)


def deliver(email, ip=None, by_administrator=False):
    """Send the reset email to the active account whose email is `email`, if there is one (the Celery
    task). A user who never chose a password gets one too: the link lets them choose it, like an
    invitation would. Returns whether an email was sent."""
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None:
        return False
    build_message(user, by_administrator=by_administrator).send(fail_silently=False)
    if not by_administrator:
        AuditEvent.record(None, "password.reset_requested", user, ip=ip)
    return True


def reset_url(user):
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.PORTAL_URL + reverse("invitations:password_reset_confirm", args=[uid, token])


def build_message(user, *, by_administrator=False):
    organisation = Organisation.get()
    context = {
        "user": user,
        "organisation": organisation,
        "reset_url": reset_url(user),
        "go_url": settings.PORTAL_URL + reverse("invitations:go"),
        "hours": max(1, settings.PASSWORD_RESET_TIMEOUT // HOUR),
        "by_administrator": by_administrator,
    }
    return render_email("password_reset", context, user)
