"""manage.py fetch_entra_keys: import Entra ID's signing keys from the JWKS mirror (cron-friendly)."""
from django.core.management.base import BaseCommand, CommandError

from enrollment import entra_keys
from enrollment.models import EntraSettings


class Command(BaseCommand):
    help = (
        "Fetch the Entra ID token-signing keys (a JWKS document) from the mirror URL of the Entra ID "
        "settings, or from --url, and import them when they differ from every active key set. Safe to "
        "run from cron: an unchanged document imports nothing. Exits non-zero when the mirror cannot "
        "be read or does not serve a usable JWKS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="fetch from this https URL instead of the configured mirror URL")

    def handle(self, *, url, **options):
        try:
            jwks, created = entra_keys.fetch_mirror(url or EntraSettings.get().jwks_mirror_url)
        except entra_keys.JwksError as exc:
            raise CommandError(str(exc)) from None
        if created:
            self.stdout.write(f"Imported {len(jwks.key_ids)} keys: {', '.join(jwks.key_ids)}")
        else:
            self.stdout.write(f"Unchanged: the keys are already imported ({jwks}).")
