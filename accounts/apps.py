from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Users and organisation")

    def ready(self):
        from . import lockout, roles  # noqa: F401  (lockout connects its signal receivers)

        post_migrate.connect(roles.sync_roles, dispatch_uid="accounts.sync_roles")
