from django.conf import settings
from django.core.checks import Error, Tags, register

from mdmportal import secret_settings


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    # Outside DEBUG the settings refuse to load with these values; with DEBUG, `check --deploy` says so.
    reason = secret_settings.unusable("SECRET_KEY", settings.SECRET_KEY)
    if reason:
        return [Error(reason, hint=f"Set SECRET_KEY in the environment to a long random value: "
                      f"{secret_settings.GENERATE}", id="mdmportal.E001")]
    return []


@register(Tags.security, deploy=True)
def check_ca_key_passphrase(app_configs, **kwargs):
    # An unset passphrase is enrollment.E001; a published one is no better.
    if settings.CA_KEY_PASSPHRASE and secret_settings.unusable("CA_KEY_PASSPHRASE", settings.CA_KEY_PASSPHRASE):
        return [Error(secret_settings.unusable("CA_KEY_PASSPHRASE", settings.CA_KEY_PASSPHRASE),
                      hint="Set CA_KEY_PASSPHRASE to a long random value (openssl rand -base64 32) before "
                           "`manage.py init_ca`.", id="mdmportal.E003")]
    return []


@register(Tags.security, deploy=True)
def check_portal_url(app_configs, **kwargs):
    if not settings.PORTAL_URL.startswith("https://"):
        return [Error("PORTAL_URL is not https", hint="Set PORTAL_URL=https://<your portal host>.",
                      id="mdmportal.E002")]
    return []
