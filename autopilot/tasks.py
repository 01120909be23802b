from celery import shared_task

from . import imports


@shared_task(acks_late=True)
def run_import(import_id):
    # A redelivered task (worker lost) resumes the import where its report stops.
    imports.run(import_id)
