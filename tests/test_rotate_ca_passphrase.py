"""`manage.py rotate_ca_passphrase`: CA_KEY_PASSPHRASE changes without losing the CA keys or the
sealed Graph client secret, in one transaction, audited without the passphrases."""
import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from autopilot import sealing
from autopilot.graph_models import GraphConnector
from pki import ca, checks
from pki.models import CertificateAuthority
from tests.factories_enrollment import CertificateAuthorityFactory, create_ca_chain, rsa_key
from tests.factories_graph import GraphConnectorFactory
from tests.fake_graph import CLIENT_SECRET

pytestmark = pytest.mark.django_db

OLD = "the old passphrase of the CA keys, long and random enough"
NEW = "the new passphrase of the CA keys, also long and random"
ACTION = "ca.passphrase_rotated"


@pytest.fixture
def stored(settings):
    """An active chain, a retired issuing CA with its key, a root kept offline (no key) and the Graph
    connector's sealed secret, all made under OLD; then the operator sets NEW in the environment file."""
    settings.CA_KEY_PASSPHRASE = OLD
    root, issuing = create_ca_chain()
    retired = CertificateAuthorityFactory(issuing=True, issuer=root, retired=True)
    CertificateAuthorityFactory(retired=True, without_key=True)
    GraphConnectorFactory()
    settings.CA_KEY_PASSPHRASE = NEW
    return root, issuing, retired


def keys():
    return dict(CertificateAuthority.objects.exclude(encrypted_key_pem="").values_list("pk", "encrypted_key_pem"))


def opens(pem, passphrase):
    try:
        serialization.load_pem_private_key(pem.encode(), password=passphrase.encode())
    except ValueError:
        return False
    return True


def sealed():
    return GraphConnector.objects.get().sealed_client_secret


def rotate(*args, **kwargs):
    out = StringIO()
    call_command("rotate_ca_passphrase", *args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


def test_rotation_reencrypts_every_ca_key_and_reseals_the_graph_secret(stored, monkeypatch):
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", OLD)
    assert checks.check_ca_keys_decrypt(None)  # NEW is set and the keys are still under OLD

    output = rotate()

    stored_keys = keys()
    assert len(stored_keys) == 3  # the retired issuing CA's key too
    assert all(opens(pem, NEW) and not opens(pem, OLD) for pem in stored_keys.values())
    assert checks.check_ca_keys_decrypt(None) == []
    certificate = ca.issue_device_certificate(rsa_key(20).public_key(), "DEVICE-AFTER-ROTATION")
    certificate.verify_directly_issued_by(ca.active_chain()[1])
    assert GraphConnector.objects.get().client_secret() == CLIENT_SECRET
    assert "3 CA keys" in output and "1 sealed secret" in output

    event = AuditEvent.objects.get(action=ACTION)
    assert event.detail["ca_keys_rotated"] == 3 and event.detail["sealed_secrets_rotated"] == 1
    row = json.dumps([event.actor_label, event.target_label, event.detail])
    assert OLD not in row and NEW not in row


def test_a_wrong_old_passphrase_writes_nothing_and_fails(stored, monkeypatch):
    before_keys, before_secret = keys(), sealed()
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", "not the passphrase the keys were encrypted with")

    with pytest.raises(CommandError) as failure:
        rotate()

    root, issuing, _retired = stored
    message = str(failure.value)
    assert root.thumbprint in message and issuing.thumbprint in message
    assert OLD not in message and NEW not in message
    assert keys() == before_keys and sealed() == before_secret
    assert all(opens(pem, OLD) for pem in keys().values())
    assert not AuditEvent.objects.filter(action=ACTION).exists()


def test_a_sealed_secret_that_does_not_open_rolls_the_ca_keys_back(stored, monkeypatch, settings):
    settings.CA_KEY_PASSPHRASE = "a third passphrase the Graph secret was sealed with"
    GraphConnector.objects.update(sealed_client_secret=sealing.seal(CLIENT_SECRET))
    settings.CA_KEY_PASSPHRASE = NEW
    before_keys, before_secret = keys(), sealed()
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", OLD)

    with pytest.raises(CommandError, match="Graph"):
        rotate()

    assert keys() == before_keys and sealed() == before_secret
    assert not AuditEvent.objects.filter(action=ACTION).exists()


def test_dry_run_checks_and_writes_nothing(stored, monkeypatch):
    before_keys, before_secret = keys(), sealed()
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", OLD)

    output = rotate("--dry-run")

    assert "3 CA keys" in output and "1 sealed secret" in output and "nothing written" in output.lower()
    assert keys() == before_keys and sealed() == before_secret
    assert not AuditEvent.objects.filter(action=ACTION).exists()

    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", "wrong")
    with pytest.raises(CommandError):
        rotate("--dry-run")


def test_running_it_again_says_so_and_changes_nothing(stored, monkeypatch):
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", OLD)
    rotate()
    after_keys, after_secret = keys(), sealed()

    output = rotate()

    assert "already" in output
    assert keys() == after_keys and sealed() == after_secret
    assert AuditEvent.objects.filter(action=ACTION).count() == 1


def test_the_old_passphrase_variable_can_be_named(stored, monkeypatch):
    monkeypatch.delenv("OLD_CA_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("MY_OLD_PASSPHRASE", OLD)

    rotate("--old-passphrase-env", "MY_OLD_PASSPHRASE")

    assert all(opens(pem, NEW) for pem in keys().values())


def test_a_missing_old_passphrase_is_a_clear_error(stored, monkeypatch):
    monkeypatch.delenv("OLD_CA_KEY_PASSPHRASE", raising=False)
    before_keys = keys()

    with pytest.raises(CommandError, match="OLD_CA_KEY_PASSPHRASE.*--old-from-development-key"):
        rotate()

    assert keys() == before_keys


def test_the_old_passphrase_is_never_taken_from_the_command_line(stored, monkeypatch):
    monkeypatch.delenv("OLD_CA_KEY_PASSPHRASE", raising=False)
    # Not even as an abbreviation of --old-passphrase-env, which argparse would otherwise accept.
    for arguments in (["--old-passphrase", OLD], ["--old", OLD], [OLD]):
        with pytest.raises(CommandError, match="unrecognized arguments"):
            rotate(*arguments)
    # A passphrase typed in place of the variable's name is not echoed back.
    with pytest.raises(CommandError) as refusal:
        rotate("--old-passphrase-env", OLD)
    assert OLD not in str(refusal.value)
    assert all(opens(pem, OLD) for pem in keys().values())


def test_the_new_passphrase_must_be_a_real_one(stored, monkeypatch, settings):
    monkeypatch.setenv("OLD_CA_KEY_PASSPHRASE", OLD)
    before_keys = keys()
    for new in ("", "change-me-ca-key-passphrase"):
        settings.CA_KEY_PASSPHRASE = new
        with pytest.raises(CommandError, match="CA_KEY_PASSPHRASE"):
            rotate()
    assert keys() == before_keys


def test_from_the_development_passphrase_to_a_real_one(settings, monkeypatch):
    settings.CA_KEY_PASSPHRASE = ""  # development: derived from SECRET_KEY
    create_ca_chain()
    GraphConnectorFactory()
    settings.CA_KEY_PASSPHRASE = NEW
    monkeypatch.delenv("OLD_CA_KEY_PASSPHRASE", raising=False)

    rotate("--old-from-development-key")

    assert all(opens(pem, NEW) for pem in keys().values())
    assert checks.check_ca_keys_decrypt(None) == []
    assert GraphConnector.objects.get().client_secret() == CLIENT_SECRET
    assert AuditEvent.objects.get(action=ACTION).detail["old_from_development_key"] is True


def test_system_checks_do_not_block_it():
    from pki.management.commands.rotate_ca_passphrase import Command

    # enrollment.E002 fails exactly between setting the new passphrase and rotating.
    assert Command.requires_system_checks == []
