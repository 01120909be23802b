"""Secrets the server must give back to someone else (the Graph connector's client secret), kept
encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from CA_KEY_PASSPHRASE,
the passphrase that already protects the CA keys (pki/ca.py), so an operator has one secret
to keep and one to rotate (`manage.py rotate_ca_passphrase` re-seals these values: enrollment/
passphrase.py, graph_models.reseal_client_secrets). Without it (development only: `check --deploy`
refuses that, enrollment.E001) the key is derived from SECRET_KEY. Plain values are never logged or
shown.
"""
import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.utils.crypto import salted_hmac

# The salt separates this key from any other use of the passphrase; it need not be secret.
SALT = b"mdmportal autopilot.sealing v1"
ITERATIONS = 200_000


class SealError(Exception):
    """A sealed value cannot be opened with the current passphrase."""


def seal(value: str, *, passphrase: str | None = None) -> str:
    """`value` sealed under the current CA_KEY_PASSPHRASE, or under `passphrase` (a CA_KEY_PASSPHRASE
    value, "" for the development one; a rotation, pki/passphrase.py)."""
    return _fernet(_passphrase(passphrase)).encrypt(value.encode()).decode()


def unseal(token: str, *, passphrase: str | None = None) -> str:
    """The plain value of `token`, opened as seal() made it; SealError when it does not open."""
    try:
        return _fernet(_passphrase(passphrase)).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise SealError("A stored secret cannot be decrypted with the current CA_KEY_PASSPHRASE "
                        "(was it or SECRET_KEY changed? `manage.py rotate_ca_passphrase` moves stored "
                        "secrets to a new passphrase): enter the secret again.") from None


def _passphrase(configured: str | None = None) -> bytes:
    configured = settings.CA_KEY_PASSPHRASE if configured is None else configured
    if configured:
        return configured.encode()
    return salted_hmac("autopilot.sealing.passphrase", "development", algorithm="sha256").hexdigest().encode()


# The key derivation is paid once per process and passphrase.
@functools.lru_cache(maxsize=4)
def _fernet(passphrase: bytes) -> Fernet:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase)))
