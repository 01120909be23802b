"""Background work of the enrollment app: ids in, domain call (enrollment/commands.py, reconcile.py,
actions.py)."""
from celery import shared_task

from . import actions, commands, entra, reconcile
from .models import Device


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
    """Retire the devices that acknowledged their Unenroll command (enrollment/actions.py)."""
    return actions.finish_retirements()


@shared_task
def purge_spent_entra_tokens():
    """Forget Entra tokens that enrolled a device once they have expired (enrollment/entra.py)."""
    return entra.purge_spent_tokens()
