"""How recently enrolled devices checked in (their last OMA-DM message, Device.last_seen_at), in the
buckets the console's device list filters by and the dashboard counts: one definition for both, so
that a figure and the list it links to show the same devices.

"Today" starts at midnight in the portal's time zone (TIME_ZONE); the other buckets are measured back
from now. A device is "silent" when it has sent nothing for SILENT_DAYS days (or never since enrolling
that long ago)."""
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

SILENT_DAYS = 7

TODAY, WEEK, MONTH, OLDER, NEVER, SILENT = "today", "week", "month", "older", "never", "silent"

# The freshness buckets, in order: together they hold every device once.
FRESHNESS = [
    (TODAY, _("Today")),
    (WEEK, _("Earlier in the last 7 days")),
    (MONTH, _("8 to 30 days ago")),
    (OLDER, _("More than 30 days ago")),
    (NEVER, _("Never")),
]
LABELS = {**dict(FRESHNESS), SILENT: _("Silent for 7 days or more")}


def midnight(now):
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def q(bucket, now=None):
    """The Device filter for `bucket` at `now`, or None for an unknown bucket."""
    now = now or timezone.now()
    week_ago, month_ago = now - timedelta(days=SILENT_DAYS), now - timedelta(days=30)
    return {
        TODAY: Q(last_seen_at__gte=midnight(now)),
        WEEK: Q(last_seen_at__gte=week_ago, last_seen_at__lt=midnight(now)),
        MONTH: Q(last_seen_at__gte=month_ago, last_seen_at__lt=week_ago),
        OLDER: Q(last_seen_at__lt=month_ago),
        NEVER: Q(last_seen_at__isnull=True),
        SILENT: Q(last_seen_at__lt=week_ago) | Q(last_seen_at__isnull=True, enrolled_at__lt=week_ago),
    }.get(bucket)
