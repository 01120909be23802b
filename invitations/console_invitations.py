"""The console's invitation follow-up: why an invitation cannot be resent or revoked and what to do
instead, the confirmation pages of Resend and Revoke, and the counts shown before "Send invitation"
on a selection of users.

Whether a user is already enrolled is the enrollment app's knowledge (a floor above): it registers
a condition over users (`register_enrolled`), and an invitation whose enrollment completed counts too.
"""
from dataclasses import dataclass

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import User

from .models import Invitation

# How many names a confirmation page lists per group before "and N more".
LISTED = 20

_enrolled_conditions = []


def register_enrolled(condition):
    """Add `condition()`: a Q or expression over users, true for a user with an enrolled device."""
    if condition not in _enrolled_conditions:
        _enrolled_conditions.append(condition)


def enrolled_condition():
    """Users with an enrolled device, or whose invitation's enrollment completed."""
    condition = Q(Exists(Invitation.objects.filter(user=OuterRef("pk"), completed_at__isnull=False)))
    for make in _enrolled_conditions:
        condition |= Q(make())
    return condition


@dataclass
class Refusal:
    """Why the action cannot be done, and the next step (with a link when there is a page for it)."""

    reason: str
    next_step: str
    link: str = ""
    link_label: str = ""


def users_list_for(user):
    return reverse("admin:accounts_user_changelist") + "?" + urlencode({"q": user.email})


def user_page(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


def resend_refusal(invitation):
    """None when `invitation` can be resent, else a Refusal (the order is the one that helps most)."""
    user = invitation.user
    if not user.is_active:
        return Refusal(_("The user's account is deactivated, so the invitation link would not work."),
                       _("Reactivate the account on the user's page, then send an invitation."),
                       user_page(user), _("Open the user's page"))
    if invitation.revoked_at:
        return Refusal(_("This invitation was revoked: its links no longer work."),
                       _("Send a new invitation: on the Users list, select the user and choose “Send invitation”."),
                       users_list_for(user), _("Find the user in the Users list"))
    if invitation.completed_at:
        return Refusal(_("The user is already enrolled: a device was enrolled after this invitation."),
                       _("The user needs no new invitation: they sign in at /go with their password. If the "
                         "enrollment address has changed for everyone, regenerate the enrollment URL on the "
                         "Organisation page; if the user forgot the password, send a password reset from their "
                         "page."),
                       user_page(user), _("Open the user's page"))
    if invitation.accepted_at:
        return Refusal(_("The user has already accepted this invitation and chosen a password."),
                       _("The user needs no new invitation: they sign in at /go with their password. If they "
                         "forgot it, send a password reset from their page."),
                       user_page(user), _("Open the user's page"))
    return None


def revoke_refusal(invitation):
    if invitation.revoked_at:
        return Refusal(_("This invitation is already revoked."),
                       _("Nothing to do: its links no longer work."))
    if invitation.completed_at:
        return Refusal(_("The user is already enrolled: revoking the invitation would not remove the device."),
                       _("To stop a device being managed, retire or wipe it from its page; to stop the user "
                         "signing in, deactivate the account on the user's page."),
                       user_page(invitation.user), _("Open the user's page"))
    return None


@dataclass
class Group:
    """One line of the Send invitation confirmation: a count and the first LISTED users."""

    key: str
    label: str
    count: int
    users: list

    @property
    def more(self):
        return self.count - len(self.users)


def invitation_plan(queryset, *, include_enrolled):
    """What "Send invitation" on the selected users would do, as Groups: a fixed handful of queries
    whatever the selection (counts and LISTED names per group)."""
    users, _active, enrolled, to_invite = _selection(queryset, include_enrolled)
    pending = Exists(Invitation.objects.pending().filter(user=OuterRef("pk")))
    groups = [
        _group("new", to_invite.exclude(pending), lambda n: ngettext(
            "%(count)d user will get a first invitation.", "%(count)d users will get a first invitation.", n)),
        _group("resend", to_invite.filter(pending), lambda n: ngettext(
            "%(count)d user has a pending invitation, sent again (the older link stops working).",
            "%(count)d users have a pending invitation, sent again (the older links stop working).", n)),
        _group("enrolled", enrolled, (lambda n: ngettext(
            "%(count)d user is already enrolled and is sent an invitation too.",
            "%(count)d users are already enrolled and are sent an invitation too.", n)) if include_enrolled
            else (lambda n: ngettext("%(count)d user is already enrolled and is skipped.",
                                     "%(count)d users are already enrolled and are skipped.", n))),
        _group("inactive", users.filter(is_active=False), lambda n: ngettext(
            "%(count)d user is deactivated and is skipped.", "%(count)d users are deactivated and are skipped.", n)),
    ]
    return groups


def invitation_targets(queryset, *, include_enrolled):
    """What the confirmed "Send invitation" needs: the ids of the users to invite and how many were
    left out, {"enrolled": n, "inactive": n}, from one query of each selected user's id, active flag
    and enrolled condition (two COUNTs and the ids' query evaluated the condition twice: 0.7 s of a
    10,000-user action)."""
    rows = list(User.objects.filter(pk__in=queryset.order_by().values("pk")).annotate(
        enrolled=ExpressionWrapper(enrolled_condition(), output_field=BooleanField()),
    ).values_list("pk", "is_active", "enrolled"))
    ids = [pk for pk, active, enrolled in rows if active and (include_enrolled or not enrolled)]
    return ids, {"enrolled": 0 if include_enrolled else sum(1 for _pk, active, enrolled in rows if active and enrolled),
                 "inactive": sum(1 for _pk, active, _enrolled in rows if not active)}


def _selection(queryset, include_enrolled):
    users = User.objects.filter(pk__in=queryset.order_by().values("pk"))
    active = users.filter(is_active=True)
    enrolled = active.filter(enrolled_condition())
    to_invite = active if include_enrolled else active.exclude(enrolled_condition())
    return users, active, enrolled, to_invite


def _group(key, users, label):
    count = users.count()
    return Group(key, label(count) % {"count": count}, count, list(users.order_by("email")[:LISTED]))
