"""The summary block of a user's console page: invitations, sign-in method and registration settings,
PIN state, and the sections of higher apps (the enrollment app adds the devices and the link to the
user's enrollment troubleshooting) registered with `register_section`. A fixed number of queries
whatever the user's history: each part reads at most a handful of rows."""
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from accounts.models import AuthPolicy, Organisation, RegistrationMode
from accounts.registration import effective_registration_settings, pins

from .models import Invitation

INVITATIONS_SHOWN = 5

_sections = []


def register_section(section):
    """Add `section(user, request)` -> {"id", "title", "rows": [(label, value)], "links": [(url, label)]}
    or None (nothing to show, or the administrator may not see it)."""
    if section not in _sections:
        _sections.append(section)


def summary(user, request):
    organisation = Organisation.get()
    policy = effective_registration_settings(user)
    invitations = list(Invitation.objects.filter(user=user).order_by("-created_at")[:INVITATIONS_SHOWN + 1])
    pin_state = None
    if policy.requires_pin:
        pin = pins().usable_pin(user)
        pin_state = (_("a usable PIN, until %(date)s") % {"date": date_format(localtime(pin.expires_at),
                                                                                "SHORT_DATETIME_FORMAT")}
                     if pin is not None else _("no usable PIN: the user gets one on their enrollment page"))
    return {
        "sign_in": AuthPolicy(organisation.auth_policy).label,
        "registration": RegistrationMode(policy.mode).label,
        "registration_source": (_("from the user group “%(group)s”") % {"group": policy.group.name} if policy.group
                                else _("the organisation's default")),
        "pin_state": pin_state,
        "invitations": invitations[:INVITATIONS_SHOWN],
        "more_invitations": len(invitations) > INVITATIONS_SHOWN,
        "invitations_url": reverse("admin:invitations_invitation_changelist") + f"?user__id__exact={user.pk}",
        "sections": [part for part in (make(user, request) for make in _sections) if part is not None],
    }
