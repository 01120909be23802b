import os
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pki import passphrase
from mdmportal import secret_settings


class Command(BaseCommand):
    help = (
        "Move the CA private keys and the sealed secrets (the Graph connector's client secret) from the "
        "old CA_KEY_PASSPHRASE to the current one, in one transaction: when anything does not open with "
        "the old passphrase, nothing is written. The new passphrase is CA_KEY_PASSPHRASE from the "
        "environment file; the old one is read from the environment variable named by "
        "--old-passphrase-env (default OLD_CA_KEY_PASSPHRASE), never from the command line, where "
        "ps and the shell history would show it. Restart the services afterwards."
    )
    # Between setting the new passphrase and running this, enrollment.E002 (the stored keys do not
    # open) fails by design, so that check must not stop the command.
    requires_system_checks = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        # No abbreviations: `--old-passphrase SECRET` must be refused, not read as --old-passphrase-env.
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--old-passphrase-env", default="OLD_CA_KEY_PASSPHRASE",
                            help="Environment variable holding the old passphrase (default OLD_CA_KEY_PASSPHRASE).")
        parser.add_argument("--old-from-development-key", action="store_true",
                            help="The old passphrase is the development one derived from SECRET_KEY "
                                 "(CA_KEY_PASSPHRASE was unset); SECRET_KEY must still be the same.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Check that everything opens with the old passphrase; write nothing.")

    def handle(self, *, old_passphrase_env, old_from_development_key, dry_run, **options):
        new = settings.CA_KEY_PASSPHRASE
        problem = secret_settings.unusable("CA_KEY_PASSPHRASE", new)
        if problem:
            raise CommandError(f"{problem}: set the new passphrase in the environment file first "
                               f"(e.g. {secret_settings.GENERATE}).")
        # Named back only when it looks like a variable name, not a passphrase typed in its place.
        variable = (old_passphrase_env if re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", old_passphrase_env)
                    else "the variable named by --old-passphrase-env")
        if old_from_development_key:
            old = ""
        else:
            old = os.environ.get(old_passphrase_env, "")
            if not old:
                raise CommandError(
                    f"The old passphrase is not set: put it in the environment variable {variable} "
                    "(if CA_KEY_PASSPHRASE was unset until now, pass --old-from-development-key instead).")

        try:
            report = passphrase.rotate(old, new, dry_run=dry_run,
                                       audit_detail={"old_from_development_key": old_from_development_key})
        except passphrase.RotationFailed as failure:
            raise CommandError(
                "Nothing was changed: these open with neither the old nor the new passphrase: "
                f"{failure}. Check {'SECRET_KEY' if old_from_development_key else variable}."
            ) from None

        keys, sealed = report.ca_keys, report.sealed_secrets
        rotated = f"{_count(keys.rotated, 'CA key')} and {_count(sealed.rotated, 'sealed secret')}"
        already = f"{_count(keys.already, 'CA key')} and {_count(sealed.already, 'sealed secret')}"
        if not (keys.rotated or sealed.rotated or keys.already or sealed.already):
            self.stdout.write("No CA key or sealed secret is stored: nothing to do.")
        elif not (keys.rotated or sealed.rotated):
            self.stdout.write(f"Nothing to do: {already} already open with the new passphrase.")
        elif dry_run:
            self.stdout.write(f"Dry run, nothing written: {rotated} open with the old passphrase"
                              + (f"; {already} already open with the new one." if keys.already or sealed.already
                                 else "."))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Re-encrypted under the new CA_KEY_PASSPHRASE: {rotated}"
                + (f" ({already} already were, left alone)" if keys.already or sealed.already else "")
                + ". Restart the services."))

def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"
