from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from pki import ca


class Command(BaseCommand):
    help = (
        "Create our two-tier PKI: a self-signed root CA (20 years) and an issuing CA signed by it "
        "(10 years) that signs device certificates. Idempotent: does nothing when they exist. The "
        "private keys are stored encrypted with CA_KEY_PASSPHRASE: set it first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organisation-name", help="Name in the CA subjects (default: the organisation's name).")
        parser.add_argument("--root-key-size", type=int, choices=[3072, 4096], default=4096)
        parser.add_argument("--issuing-key-size", type=int, choices=[2048, 3072, 4096], default=3072)

    def handle(self, *, organisation_name, root_key_size, issuing_key_size, **options):
        if organisation_name is None:
            organisation_name = Organisation.objects.filter(pk=1).values_list("name", flat=True).first() or "mdmportal"
        try:
            root, issuing, created = ca.init_ca(
                organisation_name=organisation_name, root_key_size=root_key_size, issuing_key_size=issuing_key_size)
        except ca.CaError as error:
            raise CommandError(str(error)) from None
        if not created:
            self.stdout.write("The certificate authority already exists; nothing to do.")
        else:
            self.stdout.write(self.style.SUCCESS("Created the certificate authority."))
        self.stdout.write(f"Root CA:    {root.subject}  thumbprint {root.thumbprint}  expires {root.not_after:%Y-%m-%d}")
        self.stdout.write(f"Issuing CA: {issuing.subject}  thumbprint {issuing.thumbprint}  expires {issuing.not_after:%Y-%m-%d}")
