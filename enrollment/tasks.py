"""Periodic work of the enrollment app (thin: the domain code lives in enrollment/commands.py)."""
from celery import shared_task

from . import commands


@shared_task
def expire_commands():
    """Commands of devices that stopped checking in still time out, visibly, on schedule."""
    return commands.expire_overdue()
