"""Provisioning-package enrollment with a PIN (Provisioning CSP, Enrollments): PIN enrollments are made, their
PIN replaced or revoked here, and the enrollment service asks here whether a UsernameToken is a
package's and whether one more device may enroll with it.

A package carries Workplace/Enrollments/{UPN} with AuthPolicy OnPremise and the PIN as Secret, so the
UPN and the PIN arrive verbatim in wsse:UsernameToken of GetPolicies and RST (MS-MDE2 3.4.4.1.1.1.3). One
PIN enrolls many devices: it is never spent, only counted against the maximum. Checking it costs one
password hash per enrollment (GetPolicies verifies, the RST that follows finds the verification
remembered, as enrollment/auth.py does for passwords). Wrong PINs are counted here, not through
django-axes: the UPN is no user account. The PIN's 100 bits are what stop guessing; the lockout only
stops noise, and since the UPN is predictable it must not let anyone stop every device enrolling:
- per package and client address (an IPv6 client's /64): ENROLLMENT_PPKG_FAILURE_LIMIT wrong PINs in
  a row lock that address out of that package, for a little longer each time;
- per package, a backstop far above real use: ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT wrong PINs from
  anywhere within ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS lock the package itself.
Both raise an alert (an audit event shown on its console page).
"""
import ipaddress
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import AuditEvent, Organisation

from . import rst_sql
from .models import Device, PinEnrollment, PinEnrollmentFailure
from .soap import ErrorType, Fault, SoapFault

logger = logging.getLogger(__name__)

# 20 characters of an alphabet without look-alikes (no 0/O, 1/I/L), in groups of five: 100 bits, so
# the lockout is a second line of defence. Nobody types it: it goes into the package.
PIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
PIN_GROUPS, PIN_GROUP_LENGTH = 4, 5
DEFAULT_VALIDITY_DAYS = 90
DEFAULT_MAX_DEVICES = 50
LONGEST_LOCKOUT = timedelta(days=1)

BAD_PIN = "The enrollment package's user name or PIN is incorrect."
LOCKED_OUT = "This enrollment package is locked after repeated wrong PINs. Windows will try again later."
ADDRESS_LOCKED_OUT = ("This enrollment package is locked for this network after repeated wrong PINs. Windows will "
                      "try again later.")
NO_LONGER_VALID = "This enrollment package has expired or was revoked. Ask your administrator for a new one."
CAP_REACHED = "This enrollment package has enrolled as many devices as it may. Ask your administrator."
OWNER_INACTIVE = "The account this enrollment package enrolls devices for is disabled. Contact your administrator."


def new_pin():
    groups = ("".join(secrets.choice(PIN_ALPHABET) for _ in range(PIN_GROUP_LENGTH)) for _ in range(PIN_GROUPS))
    return "-".join(groups)


def default_domain():
    """The organisation's domain as its enrollment host suggests it: enterpriseenrollment.example.com
    (the autodiscovery name, MS-MDE2 3.1) gives example.com."""
    host = urlsplit(Organisation.get().base_url).hostname or "localhost"
    prefix = "enterpriseenrollment."
    return host[len(prefix):] if host.startswith(prefix) and host.count(".") > 1 else host


def default_upn(name):
    tag = slugify(name)[:40].strip("-") or "devices"
    return f"enroll-{tag}@{default_domain()}"


def discovery_url():
    """DiscoveryServiceFullUrl of the package: the fixed autodiscovery path on the organisation's
    enrollment host. Not the versioned enrollment URL: regenerating that one is meant to stop pending
    invitations, whereas a package already pushed to devices is stopped by revoking it."""
    return Organisation.get().base_url + reverse("enrollment:autodiscovery")


class PackageOption(NamedTuple):
    """A setting of provisioning-package PIN enrollments that an app above this one keeps (management:
    the configuration groups that enrolled devices join), shown in the console's form and the API."""
    name: str  # of the form's and the API's field
    form_field: Callable  # () -> a django.forms field
    api_field: Callable  # () -> a rest_framework serializer field, reading the PinEnrollment
    initial: Callable  # (pin_enrollment) -> the form's initial value
    save: Callable  # (pin_enrollment, value or None) -> what the audit event records of it
    enrolled: Callable  # (pin_enrollment, device) -> what the device's audit event records of it
    prefetch: tuple = ()  # relations the API prefetches to read it


_options = {}


def register_option(option):
    """Add a PackageOption (from the AppConfig.ready of an app above enrollment)."""
    _options[option.name] = option


def options():
    return list(_options.values())


def create(*, name, owner, expires_at, max_devices, upn="", actor=None, ip=None, **values):
    """A new PIN enrollment; `values` are those of the registered options, by name. Returns
    (PinEnrollment, the PIN in clear: show it once, never store it)."""
    pin_enrollment = PinEnrollment(name=name, upn=upn or default_upn(name), owner=owner, expires_at=expires_at,
                                   max_devices=max_devices)
    return pin_enrollment, issue(pin_enrollment, values=values, actor=actor, ip=ip)


def issue(pin_enrollment, *, values=None, actor=None, ip=None):
    """Give an unsaved PinEnrollment its first PIN and save it, with the values of the registered options
    (by name; an option not given is saved empty). Returns the PIN in clear."""
    if pin_enrollment.pk is not None:
        raise ValueError("issue() makes new PIN enrollments; use regenerate() for an existing one")
    unknown = set(values or {}) - set(_options)
    if unknown:
        raise TypeError(f"no such PIN enrollment option: {', '.join(sorted(unknown))}")
    pin = new_pin()
    pin_enrollment.upn = pin_enrollment.upn or default_upn(pin_enrollment.name)
    pin_enrollment.pin_hash = make_password(pin)
    pin_enrollment.created_by = actor if getattr(actor, "is_authenticated", False) else None
    pin_enrollment.save()
    detail = {
        "upn": pin_enrollment.upn, "owner": pin_enrollment.owner.email, "max_devices": pin_enrollment.max_devices,
        "expires_at": pin_enrollment.expires_at.isoformat(),
    }
    for option in _options.values():
        detail[option.name] = option.save(pin_enrollment, (values or {}).get(option.name))
    AuditEvent.record(actor, "pin_enrollment.created", pin_enrollment, ip=ip, detail=detail)
    return pin


def regenerate(pin_enrollment, *, actor=None, ip=None):
    """Replace the PIN (packages built with the old one stop enrolling). Returns the new PIN in clear;
    raises InvalidTransition when revoked."""
    pin = new_pin()
    with transaction.atomic():
        locked = PinEnrollment.objects.select_for_update().get(pk=pin_enrollment.pk)
        locked.replace_pin(make_password(pin))
        AuditEvent.record(actor, "pin_enrollment.pin_regenerated", locked, ip=ip,
                          detail={"generation": locked.pin_generation})
    pin_enrollment.refresh_from_db()
    return pin


def revoke(pin_enrollment, *, actor=None, ip=None):
    """Stop it enrolling devices (those enrolled stay); raises InvalidTransition when already revoked."""
    with transaction.atomic():
        locked = PinEnrollment.objects.select_for_update().get(pk=pin_enrollment.pk)
        locked.revoke()
        AuditEvent.record(actor, "pin_enrollment.revoked", locked, ip=ip,
                          detail={"devices": locked.used_count()})
    pin_enrollment.refresh_from_db()


def unlock(pin_enrollment, *, actor=None, ip=None):
    with transaction.atomic():
        locked = PinEnrollment.objects.select_for_update().get(pk=pin_enrollment.pk)
        locked.unlock()
        AuditEvent.record(actor, "pin_enrollment.unlocked", locked, ip=ip)
    pin_enrollment.refresh_from_db()


def pin_matches(pin_enrollment, pin):
    """Whether `pin` is its current PIN (constant-time, one hash): to rebuild its package later."""
    return bool(pin) and check_password(pin, pin_enrollment.pin_hash)


def lockout_duration(number):
    """The n-th lockout in a row lasts twice as long as the one before, at most a day."""
    first = timedelta(seconds=settings.ENROLLMENT_PPKG_LOCKOUT_SECONDS)
    return min(first * 2 ** min(number - 1, 16), LONGEST_LOCKOUT)


# --- the enrollment service's side -------------------------------------------------------------------

def find(username, request=None):
    """The PIN enrollment whose UPN is `username`, or None (then it is an ordinary user's name). With
    the request, read in the same query: whether its client address is locked out of it."""
    username = (username or "").strip()
    if not username:
        return None
    if request is not None:
        return rst_sql.pin_enrollment_by_upn(username, lockout_address(request))
    return PinEnrollment.objects.select_related("owner").filter(upn__iexact=username).first()


def address_locked(pin_enrollment, address):
    locked = getattr(pin_enrollment, "address_locked", None)
    if locked is None:
        locked = PinEnrollmentFailure.objects.filter(pin_enrollment=pin_enrollment, address=address,
                                                     locked_until__gt=timezone.now()).exists()
    return locked


def authenticate(request, pin_enrollment, secret):
    """The auth.Identity a package's UsernameToken stands for; raises SoapFault (MS-MDE2 3.4.4.1.1.1.3)."""
    from .auth import Identity

    if pin_enrollment.is_revoked or pin_enrollment.is_expired:
        state = "revoked" if pin_enrollment.is_revoked else "expired"
        raise SoapFault(Fault.AUTHENTICATION, NO_LONGER_VALID, log_detail=f"PIN enrollment {pin_enrollment.pk} {state}")
    if pin_enrollment.is_locked:
        raise SoapFault(Fault.AUTHENTICATION, LOCKED_OUT,
                        log_detail=f"PIN enrollment {pin_enrollment.pk} locked until {pin_enrollment.locked_until}")
    address = lockout_address(request)
    # Before anything that could tell a right PIN from a wrong one (the cache of verified PINs).
    if address_locked(pin_enrollment, address):
        raise SoapFault(Fault.AUTHENTICATION, ADDRESS_LOCKED_OUT,
                        log_detail=f"PIN enrollment {pin_enrollment.pk} locked for {address}")
    if not _recently_verified(pin_enrollment, secret):
        if not check_password(secret, pin_enrollment.pin_hash):
            _wrong_pin(request, pin_enrollment, address)
            raise SoapFault(Fault.AUTHENTICATION, BAD_PIN,
                            log_detail=f"wrong PIN for PIN enrollment {pin_enrollment.pk}")
        _remember_verified(pin_enrollment, secret)
        # A right PIN from this address: its wrong ones were a mistake, not noise.
        PinEnrollmentFailure.objects.filter(pin_enrollment=pin_enrollment, address=address).delete()
    if not pin_enrollment.owner.is_active:
        raise SoapFault(Fault.AUTHORIZATION, OWNER_INACTIVE,
                        log_detail=f"owner {pin_enrollment.owner_id} of PIN enrollment {pin_enrollment.pk} inactive")
    return Identity(user=pin_enrollment.owner, method=Device.Method.PPKG, upn=pin_enrollment.upn,
                    pin_enrollment=pin_enrollment)


def lockout_address(request):
    """What wrong PINs are counted against: the client's address, or for IPv6 its /64 network (one
    subscriber's usual allocation, so changing addresses inside it does not reset the count)."""
    value = request.META.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _wrong_pin(request, pin_enrollment, address):
    ip = request.META.get("REMOTE_ADDR") or None
    window = timedelta(hours=settings.ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS)
    with transaction.atomic():
        # The package's row lock serialises its failures: one address row each, counts exact.
        locked = PinEnrollment.objects.select_for_update().get(pk=pin_enrollment.pk)
        package_duration = locked.record_wrong_pin(limit=settings.ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT,
                                                   lockout=lockout_duration, window=window)
        # Addresses that have been quiet for a window are forgotten, so the rows stay few.
        PinEnrollmentFailure.objects.filter(pin_enrollment=locked, last_failure_at__lt=timezone.now() - window).exclude(
            locked_until__gt=timezone.now()).exclude(address=address).delete()
        failures = PinEnrollmentFailure.objects.select_for_update().filter(pin_enrollment=locked,
                                                                           address=address).first()
        failures = failures or PinEnrollmentFailure(pin_enrollment=locked, address=address)
        address_duration = failures.record_wrong_pin(limit=settings.ENROLLMENT_PPKG_FAILURE_LIMIT,
                                                     lockout=lockout_duration, window=window)
        if address_duration is not None:
            # The administrators' alert: shown on the PIN enrollment's console page.
            AuditEvent.record(None, "pin_enrollment.address_locked", locked, ip=ip, detail={
                "scope": "address", "address": address, "locked_until": failures.locked_until.isoformat(),
                "seconds": int(address_duration.total_seconds()), "lockout": failures.lockouts,
                "failures": settings.ENROLLMENT_PPKG_FAILURE_LIMIT,
            })
            logger.warning("PIN enrollment %s locked for %s for %s after %s wrong PINs", locked.pk, address,
                           address_duration, settings.ENROLLMENT_PPKG_FAILURE_LIMIT)
        if package_duration is not None:
            AuditEvent.record(None, "pin_enrollment.locked", locked, ip=ip, detail={
                "scope": "package", "locked_until": locked.locked_until.isoformat(),
                "seconds": int(package_duration.total_seconds()), "lockout": locked.lockouts,
                "failures": settings.ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT,
                "window_hours": settings.ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS,
            })
            logger.warning("PIN enrollment %s locked for everyone for %s after %s wrong PINs in %s h (last from %s)",
                           locked.pk, package_duration, settings.ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT,
                           settings.ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS, ip)


def _verification_key(pin_enrollment, secret):
    # As auth._verification_key: the stored hash is part of the message, so a new PIN voids the entry.
    message = f"ppkg:{pin_enrollment.pk}:{pin_enrollment.pin_hash}:{secret}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
    return f"enrollment:verified:{digest}"


def _remember_verified(pin_enrollment, secret):
    cache.set(_verification_key(pin_enrollment, secret), True, settings.ENROLLMENT_PASSWORD_CACHE_SECONDS)


def _recently_verified(pin_enrollment, secret):
    return bool(cache.get(_verification_key(pin_enrollment, secret)))


def discovery_policy(offered):
    """OnPremise for a device that offers it while the organisation signs users in another way, as
    long as a package may enroll: packages always sign in on-premise (Discover answers one of the
    policies the client offered, MS-MDE2 3.1.4.1). None otherwise."""
    if "OnPremise" in offered and PinEnrollment.objects.usable().exists():
        return "OnPremise"
    return None


def claim_slot(pin_enrollment, replacing):
    """Inside the enrollment's transaction: lock the PIN enrollment and check that this device may
    still enroll with it. Concurrent devices queue on the row lock, so the maximum holds. A
    re-enrollment of hardware it already enrolled (in `replacing`) takes no new slot."""
    locked = rst_sql.pin_enrollment_for_update(pin_enrollment.pk)
    if not locked.is_usable or locked.pin_hash != pin_enrollment.pin_hash:
        raise SoapFault(Fault.AUTHENTICATION, NO_LONGER_VALID,
                        log_detail=f"PIN enrollment {locked.pk} revoked, expired or given a new PIN meanwhile")
    again = sum(1 for device in replacing if device.pin_enrollment_id == locked.pk)
    used = rst_sql.devices_used_by(locked.pk)
    if used - again >= locked.max_devices:
        raise SoapFault(Fault.AUTHORIZATION, CAP_REACHED, error_type=ErrorType.DEVICE_CAP_REACHED,
                        log_detail=f"PIN enrollment {locked.pk} has enrolled {used} of {locked.max_devices}")
    return locked


def record_device(pin_enrollment, device, *, ip=None):
    """The device enrolled with the package: the registered options apply to it (management: it joins the
    package's configuration groups by hand, and the reconciler, which runs once the enrollment commits,
    queues their settings for its first session)."""
    applied = {option.name: option.enrolled(pin_enrollment, device) for option in _options.values()}
    if device.enrollment_type != Device.EnrollmentType.FULL:
        # Unconfirmed on devices: packages are expected to enroll Full; accepted either way, but worth knowing.
        logger.info("PIN enrollment %s: device %s enrolled with EnrollmentType %s", pin_enrollment.pk, device.pk,
                    device.enrollment_type)
    AuditEvent.record(None, "pin_enrollment.device_enrolled", pin_enrollment, ip=ip, detail={
        "device": device.pk, "device_id": device.device_id, "owner": pin_enrollment.owner_id, **applied,
    })
