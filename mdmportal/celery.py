import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdmportal.settings")

app = Celery("mdmportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
