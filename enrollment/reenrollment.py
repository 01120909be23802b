"""Who may replace an enrolled device.

An enrollment request names its hardware with the DeviceID and HWDevID context items (MS-MDE2
AdditionalContext). Those are the client's own claims: they find the earlier enrollments of that
hardware (Device.objects.same_hardware), but anyone can type another PC's ids, so on their own they
never let an enrollment revoke someone else's certificate and take the record over (OWASP ASVS V4,
access control: the server decides from what the caller proved, not from identifiers it sent).

A live earlier enrollment may be replaced when

* the enrolling user is its user, signing in with their own credential (password, sign-in page,
  registration PIN, Entra token), or
* the enrollment's own credential proves the same hardware: the provisioning package that enrolled
  it, an Entra token whose `deviceid` claim is the device's (Microsoft identity platform access-token
  claims: the id of the Entra device object the token was issued to), or a proof another app adds
  with register_hardware_proof() (Autopilot: the record the device was matched to, by a hardware hash
  the request carries again), or
* it can no longer be anyone's: an administrator released it for re-enrollment (management/actions.py;
  the replacement spends the release), or a proof another app adds with register_hardware_proof()
  says so (management: its wipe was acknowledged, RemoteWipe CSP).

Retired, unenrolled and replaced enrollments are not live: a new enrollment of their hardware simply
starts a new record. Anything else is refused with s:Authorization and audited on the device.
"""
from django.utils.translation import gettext_lazy as _

from .soap import Fault, SoapFault

NOT_YOURS = _("This device is enrolled by someone else. Ask your administrator to release it for "
              "re-enrollment, then try again.")
_hardware_proofs = []


def register_hardware_proof(proof):
    """Add `proof(old_device, context_items) -> str`: a non-empty reason when the request's own
    credentials prove it comes from the hardware of `old_device`, or when `old_device` can no longer be
    anyone's. For apps built on this one (management, Autopilot), which enrollment must not import."""
    if proof not in _hardware_proofs:
        _hardware_proofs.append(proof)


class ReplacementRefused(SoapFault):
    """The enrollment named a device it may not replace; `device` is that device."""

    def __init__(self, device, match, user, log_detail):
        super().__init__(Fault.AUTHORIZATION, str(NOT_YOURS), log_detail=log_detail)
        self.device, self.match, self.user = device, match, user


def match_of(old, device_id):
    return "DeviceID" if old.device_id.lower() == device_id.lower() else "HWDevID"


def grounds(old, *, user, identity, pin_enrollment, token_request):
    """Why this enrollment may replace `old` (a live enrollment of the hardware it names), or ""."""
    if pin_enrollment is None and user is not None and old.user_id == user.pk:
        return "same user"
    if pin_enrollment is not None and old.pin_enrollment_id == pin_enrollment.pk:
        return "same provisioning package"
    claims = identity.entra
    if claims is not None and claims.device_id and old.entra_device_id.lower() == claims.device_id.lower():
        return "same Entra device (deviceid claim)"
    if old.is_released_for_reenrollment:
        return "released for re-enrollment"
    for proof in _hardware_proofs:
        reason = proof(old, token_request.items)
        if reason:
            return reason
    return ""


def check(earlier, *, user, identity, pin_enrollment, token_request):
    """{device pk: grounds} for each device of `earlier` this enrollment replaces; raises
    ReplacementRefused for the first one it may not."""
    found = {}
    for old in earlier:
        reason = grounds(old, user=user, identity=identity, pin_enrollment=pin_enrollment,
                         token_request=token_request)
        if not reason:
            match = match_of(old, token_request.device_id)
            raise ReplacementRefused(old, match, user, log_detail=(
                f"device {old.pk} (matched by {match}) belongs to "
                f"{f'user {old.user_id}' if old.user_id else 'no user'}: this enrollment "
                f"({identity.method}, {f'user {user.pk}' if user else 'no user'}) proves neither the same user "
                "nor the same hardware, and the device is not released for re-enrollment or wiped"))
        found[old.pk] = reason
    return found
