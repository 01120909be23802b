"""A password hasher that counts its work, for bench/run only (the target: exactly one password hash
per enrollment).

The bench server runs with BENCH_PASSWORD_HASH_LOG set; bench/settings.py then makes this the only
hasher. It is Django's default PBKDF2 hasher (same algorithm name, same iterations, so it reads
and writes the same hashes) that appends one byte to that file for every hash it computes:
`encode` is the single place where both make_password and check_password (through `verify`) derive
a key. O_APPEND makes the single-byte writes of several gunicorn workers safe to interleave, so
the file size is the number of hashes the whole server computed.
"""
import os

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class CountingPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    def encode(self, password, salt, iterations=None):
        descriptor = os.open(settings.BENCH_PASSWORD_HASH_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, b".")
        finally:
            os.close(descriptor)
        return super().encode(password, salt, iterations)


def hashes_counted(path):
    """How many hashes the server computed so far (the log's size; 0 before the first)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
