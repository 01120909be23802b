"""Autopilot's figures on the console dashboard (registered with invitations/dashboard.py)."""
from django.urls import reverse
from django.utils.translation import gettext as _

from .models import AppInstall


def stalled_installs_card(user):
    """MSI installs found stalled (sent again and waiting, or given up): shown only when there are some."""
    if not user.has_perm("autopilot.view_appinstall"):
        return None
    count = AppInstall.objects.filter(AppInstall.stalled_q()).count()
    if not count:
        return None
    return {"id": "card-stalled-apps", "figure": count, "label": _("Stalled app installs"),
            "url": reverse("admin:autopilot_appinstall_changelist") + "?stalled=yes"}
