from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConsoleConfig(AdminConfig):
    """The Django admin, used as the administrators' console."""

    default_site = "mdmportal.console.ConsoleSite"


class MdmportalConfig(AppConfig):
    name = "mdmportal"
