"""Rotating CA_KEY_PASSPHRASE without losing what it protects (`manage.py rotate_ca_passphrase`).

The passphrase encrypts every stored CA private key (pki/ca.py) and seals the secrets other
apps must give back to someone (the Graph connector's client secret). A rotation opens each of them
with the old passphrase and stores it again under the new one, in one database transaction: when
anything does not open, nothing is written (OWASP Cryptographic Storage Cheat Sheet, key rotation:
re-encrypt everything under the new key, and never leave data readable by neither).

Passphrases travel here as CA_KEY_PASSPHRASE values: "" stands for the development passphrase, which
each use derives from SECRET_KEY in its own way. They are never logged, shown or audited.
"""
from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import AuditEvent

from . import ca
from .models import CertificateAuthority

AUDIT_ACTION = "ca.passphrase_rotated"


@dataclass
class Outcome:
    """What a rotation did, or would do, to one kind of secret."""
    rotated: int = 0
    already: int = 0  # already under the new passphrase: left alone
    failed: list[str] = field(default_factory=list)  # what opens with neither passphrase, by name

    def __iadd__(self, other):
        self.rotated += other.rotated
        self.already += other.already
        self.failed += other.failed
        return self


@dataclass
class Report:
    ca_keys: Outcome
    sealed_secrets: Outcome


class RotationFailed(Exception):
    """Something opens with neither passphrase; nothing was written. `report` says what."""

    def __init__(self, report):
        super().__init__("; ".join(report.ca_keys.failed + report.sealed_secrets.failed))
        self.report = report


_sealed_secrets = []


def register_sealed_secrets(rotate):
    """Add `rotate(old, new, *, dry_run) -> Outcome` for an app built on this one (Autopilot), which
    pki must not import: it seals again under `new` each of its secrets that `old` opens (both
    CA_KEY_PASSPHRASE values, "" for the development one), counts those `new` already opens, names the
    others in `failed`, and writes nothing when `dry_run`. It runs inside the rotation's transaction,
    so it must write through the database only."""
    if rotate not in _sealed_secrets:
        _sealed_secrets.append(rotate)


def rotate(old: str, new: str, *, dry_run: bool = False, audit_detail=None) -> Report:
    """Move every CA key and sealed secret from passphrase `old` to `new` in one transaction. Raises
    RotationFailed (and writes nothing) when one opens with neither; writes nothing when `dry_run`.
    Audited, with counts only, when something was rotated."""
    with transaction.atomic():
        report = Report(_rotate_ca_keys(old, new, dry_run=dry_run), Outcome())
        for rotate_sealed in _sealed_secrets:
            report.sealed_secrets += rotate_sealed(old, new, dry_run=dry_run)
        if report.ca_keys.failed or report.sealed_secrets.failed:
            raise RotationFailed(report)  # leaving the block rolls back what was written
        if dry_run:
            transaction.set_rollback(True)
        elif report.ca_keys.rotated or report.sealed_secrets.rotated:
            AuditEvent.record(None, AUDIT_ACTION, detail={
                "ca_keys_rotated": report.ca_keys.rotated,
                "ca_keys_already": report.ca_keys.already,
                "sealed_secrets_rotated": report.sealed_secrets.rotated,
                "sealed_secrets_already": report.sealed_secrets.already,
                **(audit_detail or {}),
            })
    return report


def _rotate_ca_keys(old: str, new: str, *, dry_run: bool) -> Outcome:
    old_bytes, new_bytes = ca.passphrase_bytes(old), ca.passphrase_bytes(new)
    outcome = Outcome()
    # Every stored key, the retired CAs' too: a key left under the old passphrase is lost with it.
    authorities = CertificateAuthority.objects.select_for_update().exclude(encrypted_key_pem="").order_by("pk")
    for authority in authorities:
        if _opens(authority.encrypted_key_pem, new_bytes):
            outcome.already += 1
            continue
        key = _opens(authority.encrypted_key_pem, old_bytes)
        if key is None:
            outcome.failed.append(f"the private key of the {authority} ({authority.thumbprint})")
            continue
        outcome.rotated += 1
        if not dry_run:
            authority.encrypted_key_pem = ca.encrypt_key(key, new_bytes)
            authority.save(update_fields=["encrypted_key_pem"])
    return outcome


def _opens(encrypted_pem, passphrase):
    try:
        return ca.decrypt_key(encrypted_pem, passphrase)
    except ca.CaKeyError:
        return None
