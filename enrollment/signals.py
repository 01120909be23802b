"""What enrollment announces to the apps built on it, which it must not import: they connect their
receivers in their AppConfig.ready (management/apps.py)."""
from django.dispatch import Signal

# A device's enrollment ended: its user removed the work account, or an administrator retired it. Sent
# by the Device (sender) with `device` and `note` (why, for what is still pending), inside the caller's
# transaction, after the device is saved.
enrollment_ended = Signal()
