from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return [Error("SECRET_KEY is the development key", hint="Set SECRET_KEY in the environment.",
                      id="mdmportal.E001")]
    return []


@register(Tags.security, deploy=True)
def check_portal_url(app_configs, **kwargs):
    if not settings.PORTAL_URL.startswith("https://"):
        return [Error("PORTAL_URL is not https", hint="Set PORTAL_URL=https://<your portal host>.",
                      id="mdmportal.E002")]
    return []
