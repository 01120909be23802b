from django.apps import AppConfig
from django.db.models.signals import post_migrate


class InvitationsConfig(AppConfig):
    name = "invitations"
    verbose_name = "Users and invitations"

    def ready(self):
        from . import lockout, roles  # noqa: F401  (lockout connects its signal receivers)

        post_migrate.connect(roles.sync_roles, dispatch_uid="invitations.sync_roles")
