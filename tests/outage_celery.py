"""The Celery app of the worker-outage tests: mdmportal's own app, with fan-out chunks small enough
(OUTAGE_FANOUT_CHUNK) that a test can kill the worker between two batches of a few rows."""
import os

import django

from mdmportal.celery import app  # noqa: F401  (sets DJANGO_SETTINGS_MODULE; `celery -A` finds it here)

django.setup()

from invitations import sending  # noqa: E402

sending.FANOUT_CHUNK = int(os.environ.get("OUTAGE_FANOUT_CHUNK", sending.FANOUT_CHUNK))
