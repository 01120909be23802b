"""Registration authentication settings (as Ivanti has them): what a user proves to
enroll a device (password, a one-time registration PIN, or both) and the shape of their PINs.

The organisation holds the default; a user group overrides it for its members. This module is the one
place that decides which settings apply to a user.
"""
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from .models import Organisation, RegistrationMode, UserGroup


@dataclass(frozen=True)
class RegistrationPolicy:
    mode: str
    pin_length: int
    pin_lifetime: timedelta
    renewal_allowed: bool
    group: UserGroup | None = None  # None: the organisation's default

    @property
    def requires_pin(self):
        return self.mode in (RegistrationMode.PIN, RegistrationMode.PIN_AND_PASSWORD)

    @property
    def requires_password(self):
        return self.mode in (RegistrationMode.PASSWORD, RegistrationMode.PIN_AND_PASSWORD)

    @property
    def needs_sign_in_page(self):
        """Two secrets do not fit Windows' single on-premise password box (see enrollment/discovery.py)."""
        return self.mode == RegistrationMode.PIN_AND_PASSWORD

    @classmethod
    def of(cls, source, group=None):
        return cls(mode=source.registration_mode, pin_length=source.pin_length,
                   pin_lifetime=timedelta(hours=source.pin_lifetime_hours),
                   renewal_allowed=source.pin_renewal_allowed, group=group)


def effective_registration_settings(user):
    """The settings of the user's highest-priority group, else the organisation's default. `user` may
    be None (an unknown name typed at sign-in): unknown accounts look like default ones."""
    if user is not None and user.pk is not None:
        group = UserGroup.objects.filter(members=user).order_by("priority", "name").first()
        if group is not None:
            return RegistrationPolicy.of(group, group)
    return RegistrationPolicy.of(Organisation.get())


def registration_settings_for(users):
    """effective_registration_settings of many users in two queries: {user pk: RegistrationPolicy}."""
    default = RegistrationPolicy.of(Organisation.get())
    chosen = {}
    memberships = (UserGroup.members.through.objects.filter(user__in=[user.pk for user in users])
                   .select_related("usergroup").order_by("usergroup__priority", "usergroup__name"))
    for membership in memberships:
        chosen.setdefault(membership.user_id, membership.usergroup)
    return {user.pk: RegistrationPolicy.of(chosen[user.pk], chosen[user.pk]) if user.pk in chosen else default
            for user in users}


class RenewalNotAllowed(Exception):
    """The user's registration settings do not let them request a PIN themselves."""


# The registration PINs themselves (their records, hashing, audit) belong to the enrollment app, which
# checks them when a device enrolls and which this app must not import: it registers them here in its
# AppConfig.ready, and the invitation email and the user's enrollment page reach them through pins().
_pins = []


class IssuedPin(NamedTuple):
    """A PIN just issued: shown this once, then only its hash is kept."""
    record: object  # the stored PIN: expires_at, is_usable, revoke()
    code: str  # the PIN in clear


def register_pins(issuer):
    """`issuer` provides issue(user, *, actor=None, ip=None) and renew(user, *, ip=None) -> IssuedPin,
    the latter raising RenewalNotAllowed, and usable_pin(user) -> the user's usable record or None."""
    if _pins and _pins[0] is not issuer:
        raise ValueError("registration PINs are already provided by another module")
    _pins[:] = [issuer]


def pins():
    """The registered PIN issuer (enrollment/pins.py)."""
    if not _pins:
        raise LookupError("no app provides registration PINs (the enrollment app registers them)")
    return _pins[0]
