"""Background work of the Autopilot app: ids in, domain call (imports.py, provisioning.py)."""
from celery import shared_task

from . import imports, provisioning


@shared_task(acks_late=True)
def run_import(import_id, only_if_queued=False):
    # A redelivered task (worker lost) resumes the import where its report stops.
    imports.run(import_id, only_if_queued=only_if_queued)


@shared_task
def sweep_imports():
    """Imports left queued while the broker was down get their task."""
    return imports.sweep()


@shared_task
def finish_overdue_setups():
    """Enrollment Status Pages past their time-out end even when their device went quiet."""
    return provisioning.finish_overdue()
