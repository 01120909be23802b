"""One-time registration PINs: the secret a user types instead of, or with, the
account password when their registration settings ask for one (accounts/registration.py).

A PIN is generated here with the user's effective length and lifetime, shown once (in the invitation
email, or on the user's enrollment page), and stored only as a password hash. It proves nothing after
it expires, is replaced or has enrolled a device. Checking goes through django.contrib.auth.authenticate(),
so django-axes locks the account and the address after repeated failures exactly as for passwords.
"""
import secrets
import string

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.registration import IssuedPin, RenewalNotAllowed, effective_registration_settings

from .models import RegistrationPin

__all__ = ["RenewalNotAllowed", "issue", "renew", "usable_pin", "matching_pin", "PinBackend"]


def issue(user, *, actor=None, ip=None, renewal=False):
    """A new PIN for `user`, replacing any usable one: an IssuedPin of the RegistrationPin and the PIN in
    clear."""
    policy = effective_registration_settings(user)
    raw = "".join(secrets.choice(string.digits) for _ in range(policy.pin_length))
    with transaction.atomic():
        for previous in RegistrationPin.objects.select_for_update().usable().filter(user=user):
            previous.revoke()
        pin = RegistrationPin.objects.create(
            user=user, pin_hash=make_password(raw), created_by=actor if getattr(actor, "is_authenticated", False)
            else None, expires_at=timezone.now() + policy.pin_lifetime,
        )
        AuditEvent.record(actor, "registration_pin.renewed" if renewal else "registration_pin.issued", user, ip=ip,
                          detail={"pin": pin.pk, "expires_at": pin.expires_at.isoformat(), "length": policy.pin_length,
                                  "group": policy.group.name if policy.group else None})
    return IssuedPin(pin, raw)


def renew(user, *, ip=None):
    """The user asked for a new PIN on their enrollment page. Raises RenewalNotAllowed."""
    policy = effective_registration_settings(user)
    if not (policy.requires_pin and policy.renewal_allowed):
        raise RenewalNotAllowed(user.pk)
    return issue(user, actor=user, ip=ip, renewal=True)


def usable_pin(user):
    return RegistrationPin.objects.usable().filter(user=user).first()


def matching_pin(user, raw):
    """The user's usable PIN if `raw` is it, else None. Costs one hash either way."""
    pin = RegistrationPin.objects.usable().filter(user=user).first()
    if pin is None:
        make_password(raw)  # same cost as a real check: do not reveal that there is no PIN
        return None
    return pin if check_password(raw, pin.pin_hash) else None


class PinBackend:
    """Authentication backend for `authenticate(request, username=<email>, pin=<PIN>)`. It answers
    nothing else, so it never lets a PIN open the console or the portal (they pass `password`)."""

    def authenticate(self, request, username=None, pin=None, **kwargs):
        if username is None or pin is None:
            return None
        user = get_user_model().objects.filter(email__iexact=username).first()
        if user is None:
            make_password(pin)
            return None
        registration_pin = matching_pin(user, pin)
        if registration_pin is None or not user.is_active:
            return None
        user.registration_pin = registration_pin
        return user

    def get_user(self, user_id):
        return get_user_model().objects.filter(pk=user_id, is_active=True).first()
