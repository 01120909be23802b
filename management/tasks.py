"""Background work of the management app: ids in, domain call (management/commands.py, reconcile.py,
actions.py)."""
from celery import shared_task

from enrollment.models import Device

from . import actions, commands, reconcile


@shared_task
def expire_commands():
    """Commands of devices that stopped checking in still time out, visibly, on schedule."""
    return commands.expire_overdue()


@shared_task
def reconcile_devices(device_ids):
    for device in Device.objects.enrolled().filter(pk__in=device_ids):
        reconcile.reconcile_device(device)


@shared_task
def finish_retirements():
    """Retire the devices that acknowledged their Unenroll command (management/actions.py)."""
    return actions.finish_retirements()

