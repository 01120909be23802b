"""Shared API permission: the same model permissions as the console, reads included."""
from axes.helpers import get_client_ip_address
from rest_framework.permissions import DjangoModelPermissions


class ConsolePermissions(DjangoModelPermissions):
    """Staff only, then the model permission for the HTTP method (view_* for reads).

    A view can name the permissions of an action that is not plain CRUD (resend, regenerate...) in
    `action_permissions = {"resend": ["invitations.send_invitation"]}`; those replace the
    method-based ones for that action, so a POST that sends emails is not mistaken for "add".
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated and request.user.is_staff):
            return False
        action_perms = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if action_perms is not None:
            return request.user.has_perms(action_perms)
        return super().has_permission(request, view)


def client_ip(request):
    """The address audited for an API call, resolved the way the sign-in lockout resolves it."""
    return get_client_ip_address(request)
