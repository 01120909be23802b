"""Device-facing URL of management (SyncML, CSRF-exempt), matched case-insensitively like enrollment's
and never redirected: Windows does not follow a 301 (MS-MDE2 3.1)."""
from django.conf import settings
from django.urls import re_path

from enrollment.device_urls import anycase

from . import device_views

app_name = "management"

urlpatterns = [
    # The management address is written into the provisioning document (ADDR), keyless: devices keep
    # it for their whole enrollment, across enrollment-URL rotations.
    re_path(rf"^{anycase(settings.ENROLLMENT_MANAGEMENT_PATH.lstrip('/'))}$", device_views.management,
            name="management"),
]
