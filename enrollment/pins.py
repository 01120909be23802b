"""One-time registration PINs (issue 3 item 3), the secret a user types in Windows' password box
when the organisation enrolls with PINs instead of account passwords.

Issuing shows the PIN once (the caller puts it in the invitation email or on the enrollment page);
only a password hash is stored. A PIN proves nothing after it expires, is revoked or has enrolled a
device. Checking goes through django.contrib.auth.authenticate(), so django-axes locks the account
and the address after repeated failures exactly as for passwords, and records every failure.
"""
import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from invitations.models import AuditEvent

from .models import RegistrationPin


def issue(user, *, actor=None, ip=None):
    """A new PIN for `user`, replacing any usable one. Returns (RegistrationPin, the PIN in clear)."""
    raw = "".join(secrets.choice(string.digits) for _ in range(settings.ENROLLMENT_PIN_LENGTH))
    with transaction.atomic():
        for previous in RegistrationPin.objects.select_for_update().usable().filter(user=user):
            previous.revoke()
        pin = RegistrationPin.objects.create(
            user=user, pin_hash=make_password(raw), created_by=actor if getattr(actor, "is_authenticated", False)
            else None, expires_at=timezone.now() + timedelta(hours=settings.ENROLLMENT_PIN_TTL_HOURS),
        )
        AuditEvent.record(actor, "registration_pin.issued", user, ip=ip, detail={"pin": pin.pk,
                                                                                 "expires_at": pin.expires_at.isoformat()})
    return pin, raw


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
