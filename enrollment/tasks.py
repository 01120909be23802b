"""Background work of the enrollment app: ids in, domain call."""
from celery import shared_task

from . import entra


@shared_task
def purge_spent_entra_tokens():
    """Forget Entra tokens that enrolled a device once they have expired (enrollment/entra.py)."""
    return entra.purge_spent_tokens()
