from enrollment.models import Device

from .models import Invitation, User


def counts():
    """The console dashboard's figures."""
    return {
        "users": User.objects.filter(is_staff=False).count(),
        "pending_invitations": Invitation.objects.pending().count(),
        "enrolled_devices": Device.objects.enrolled().count(),
    }
