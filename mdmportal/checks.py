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


# Backends that write emails where others read them: the process's output (the journal) or files.
LEAKING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "to the console (the journal)",
    "django.core.mail.backends.filebased.EmailBackend": "to files",
    "mdmportal.mail.UnconfiguredEmailBackend": "nowhere: EMAIL_URL is not set",
}


def email_misconfiguration():
    """Outside DEBUG, why emails (invitation links, registration PINs) are not sent by SMTP; or None."""
    if settings.DEBUG or settings.EMAIL_BACKEND not in LEAKING_EMAIL_BACKENDS:
        return None
    return f"emails go {LEAKING_EMAIL_BACKENDS[settings.EMAIL_BACKEND]}"


@register(Tags.security)
def check_email_backend(app_configs, **kwargs):
    # Not deploy-only: `migrate`, which every deployment runs, stops on it.
    problem = email_misconfiguration()
    if problem:
        return [Error(f"With DEBUG off, {problem}; invitation emails carry sign-in links and PINs.",
                      hint="Set EMAIL_URL=smtp+tls://user:password@host:587 (DEBUG=true for development).",
                      id="mdmportal.E004")]
    return []
