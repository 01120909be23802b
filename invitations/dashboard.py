from django.apps import apps

from .models import Invitation, User


def counts():
    """The dashboard's figures. Devices are counted once the enrollment app has its model."""
    figures = {
        "users": User.objects.filter(is_staff=False).count(),
        "pending_invitations": Invitation.objects.pending().count(),
        "enrolled_devices": None,
    }
    try:
        Device = apps.get_model("enrollment", "Device")
    except LookupError:
        return figures
    figures["enrolled_devices"] = Device.objects.enrolled().count()
    return figures
