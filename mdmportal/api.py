"""Shared API permission: the same model permissions as the console, reads included; the HTML pages
of the browsable API."""
from rest_framework import renderers
from rest_framework.permissions import DjangoModelPermissions

from mdmportal import csp


class ConsolePermissions(DjangoModelPermissions):
    """Staff only, then the model permission for the HTTP method (view_* for reads).

    A view can name the permissions of an action that is not plain CRUD (resend, regenerate...) in
    `action_permissions = {"resend": ["accounts.send_invitation"]}`; those replace the
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


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's HTML pages for administrators exploring the API in a browser. DRF's templates carry inline
    styles (the syntax colours, two floated buttons), so these pages alone allow inline styles; their
    scripts stay our own static files, as on every page (mdmportal/csp.py)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            csp.allow(response, "style-src", "'unsafe-inline'")
        return super().render(data, accepted_media_type, renderer_context)
