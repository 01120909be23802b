"""System checks for our CA: a missing passphrase in production, keys the passphrase cannot open."""
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

MIN_PASSPHRASE_LENGTH = 20


@register(Tags.security, deploy=True)
def check_ca_passphrase(app_configs, **kwargs):
    if not settings.CA_KEY_PASSPHRASE:
        return [Error(
            "CA_KEY_PASSPHRASE is not set: the CA private keys are encrypted with a passphrase derived from SECRET_KEY.",
            hint="Set CA_KEY_PASSPHRASE to a long random value (openssl rand -base64 32) before "
                 "`manage.py init_ca`; with keys already stored, set it and run "
                 "`manage.py rotate_ca_passphrase --old-from-development-key`.",
            id="enrollment.E001",
        )]
    if len(settings.CA_KEY_PASSPHRASE) < MIN_PASSPHRASE_LENGTH:
        # The PKCS#8 encryption uses PBKDF2 with only 2048 iterations: the passphrase carries the strength.
        return [Warning(
            f"CA_KEY_PASSPHRASE is shorter than {MIN_PASSPHRASE_LENGTH} characters.",
            hint="Use a long random value (openssl rand -base64 32).",
            id="enrollment.W001",
        )]
    return []


@register(Tags.security)
def check_ca_keys_decrypt(app_configs, **kwargs):
    from .ca import CaKeyError, certificate_of, private_key_of
    from .models import CertificateAuthority

    try:
        authorities = list(CertificateAuthority.objects.filter(active=True).exclude(encrypted_key_pem=""))
    except DatabaseError:
        return []  # no database or not migrated yet: nothing stored to check
    errors = []
    for authority in authorities:
        try:
            key = private_key_of(authority)
        except CaKeyError:
            errors.append(Error(
                f"The private key of the {authority.get_kind_display()} ({authority.thumbprint}) cannot be "
                "decrypted with the current CA_KEY_PASSPHRASE.",
                hint="After changing CA_KEY_PASSPHRASE, run `manage.py rotate_ca_passphrase` with the old one in "
                     "OLD_CA_KEY_PASSPHRASE. Otherwise restore the passphrase (or SECRET_KEY, if none was set) "
                     "used when the CA was created, or import the CA again with `manage.py import_ca --replace`.",
                id="enrollment.E002",
            ))
            continue
        if key.public_key().public_numbers() != certificate_of(authority).public_key().public_numbers():
            errors.append(Error(
                f"The stored private key of the {authority.get_kind_display()} ({authority.thumbprint}) "
                "does not match its certificate.",
                hint="Import the CA again with `manage.py import_ca --replace`.",
                id="enrollment.E003",
            ))
    return errors
