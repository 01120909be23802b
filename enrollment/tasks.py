"""Background work of the device management side: ids in, domain call."""
from celery import shared_task

from . import actions, reconcile
from .models import Device


@shared_task
def reconcile_devices(device_ids):
    for device in Device.objects.enrolled().filter(pk__in=device_ids):
        reconcile.reconcile_device(device)


@shared_task
def finish_retirements():
    """Retire the devices that acknowledged their Unenroll command (enrollment/actions.py)."""
    return actions.finish_retirements()
