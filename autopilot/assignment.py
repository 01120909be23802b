"""Which profile an Autopilot device gets, and why.

An explicit selection wins; then the profile whose group tags include the device's group tag; then
the default profile. `effective_profile` answers with the reason an administrator reads.
"""
from dataclasses import dataclass

from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts.models import AuditEvent

from .models import AutopilotDevice, GroupTagRule, Profile


@dataclass(frozen=True)
class Assignment:
    profile: Profile | None
    reason: str
    source: str  # "explicit", "group_tag", "default" or "none"


class Resolver:
    """Resolves many devices with two queries (the group-tag rules and the default profile)."""

    def __init__(self):
        self.by_tag = {rule.tag.lower(): rule.profile
                       for rule in GroupTagRule.objects.select_related("profile")}
        self.default = Profile.objects.filter(is_default=True).first()

    def __call__(self, device):
        if device.profile_id is not None:
            who = device.profile_assigned_by.email if device.profile_assigned_by else _("an administrator")
            when = formats.date_format(timezone.localtime(device.profile_assigned_at), "DATE_FORMAT") \
                if device.profile_assigned_at else _("an unknown date")
            return Assignment(device.profile, _("assigned by %(who)s on %(when)s") % {"who": who, "when": when},
                              "explicit")
        tag = device.group_tag.strip()
        if tag and tag.lower() in self.by_tag:
            return Assignment(self.by_tag[tag.lower()], _("from group tag %(tag)s") % {"tag": tag}, "group_tag")
        if self.default is not None:
            return Assignment(self.default, _("default profile"), "default")
        reason = _("no profile: group tag %(tag)s matches no profile and there is no default profile") % {"tag": tag} \
            if tag else _("no profile: none assigned, no group tag and no default profile")
        return Assignment(None, reason, "none")


def effective_profile(device):
    """The profile the device gets and the reason: an Assignment."""
    return Resolver()(device)


def assign(devices, profile, *, actor, ip=None):
    """Explicitly assign `profile` (None: clear the selection) to the devices; audited. Returns the count."""
    devices = list(devices)
    with transaction.atomic():
        for device in AutopilotDevice.objects.select_for_update().filter(pk__in=[d.pk for d in devices]):
            device.assign_profile(profile, by=actor)
        AuditEvent.record(actor, "autopilot.profile_assigned", profile, ip=ip, detail={
            "profile": profile.name if profile else None,
            "devices": [d.serial_number for d in devices][:1000],
            "count": len(devices),
        })
    return len(devices)
