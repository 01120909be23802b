"""Template filters of the end-user portal."""
import math

from django import template

register = template.Library()


@register.filter
def minutes_to_wait(delta):
    """A lockout's remaining time (a timedelta) as whole minutes, rounded up so "0 minutes" never shows."""
    return max(1, math.ceil(delta.total_seconds() / 60))
