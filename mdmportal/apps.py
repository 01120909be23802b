from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConsoleConfig(AdminConfig):
    """The Django admin, used as the administrators' console."""

    default_site = "mdmportal.admin_site.ConsoleSite"


class MdmportalConfig(AppConfig):
    name = "mdmportal"

    def ready(self):
        from . import checks  # noqa: F401  (registers the deployment checks)
