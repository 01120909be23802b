"""The System section's pages (API tokens, sign-in lockouts and logs, mdmportal/navigation.py) for full
administrators only: their admin classes, registered by knox's replacement (invitations/admin.py) and
by django-axes, are registered again here with every permission also requiring a full administrator,
so that no other role sees them in the menu nor reaches them by their address. This module is
imported by the admin's autodiscovery after every app's own admin module (mdmportal is the last app)."""
from django.apps import apps
from django.contrib import admin

from . import navigation


class FullAdministratorsOnly:
    def has_module_permission(self, request):
        return navigation.full_admin(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return navigation.full_admin(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args, **kwargs):
        return navigation.full_admin(request) and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return navigation.full_admin(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return navigation.full_admin(request) and super().has_delete_permission(request, obj)


def _restrict(site):
    for model in apps.get_models():
        if model._meta.object_name in navigation.SYSTEM_MODELS and site.is_registered(model):
            model_admin = type(site.get_model_admin(model))
            site.unregister(model)
            site.register(model, type(f"FullAdministratorsOnly{model_admin.__name__}",
                                      (FullAdministratorsOnly, model_admin), {}))


_restrict(admin.site)
