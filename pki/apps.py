from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = _("Certificate authority")

    def ready(self):
        from . import checks  # noqa: F401  (registers the CA system checks)
