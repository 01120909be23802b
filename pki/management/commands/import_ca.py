import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pki import ca


class Command(BaseCommand):
    help = (
        "Import an existing two-tier CA (a root and the issuing CA it signed) from PEM/DER files or "
        "PKCS#12. The issuing CA's private key is required; the root's is optional (it may stay "
        "offline). Checks that the issuing CA is signed by the root and that each key matches its "
        "certificate. The password of encrypted keys or PKCS#12 files is read from the environment "
        "variable named by --password-env (default CA_IMPORT_PASSWORD)."
    )
    # Importing is the way out when the stored keys fail the enrollment.E002 check, so that check
    # must not stop this command.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--root-cert", type=Path, help="Root CA certificate (PEM or DER).")
        parser.add_argument("--root-key", type=Path, help="Root CA private key (PEM or DER), optional.")
        parser.add_argument("--issuing-cert", type=Path, help="Issuing CA certificate (PEM or DER).")
        parser.add_argument("--issuing-key", type=Path, help="Issuing CA private key (PEM or DER).")
        parser.add_argument("--pkcs12", type=Path,
                            help="PKCS#12 with the issuing CA key and certificate (and the root in its chain).")
        parser.add_argument("--root-pkcs12", type=Path, help="PKCS#12 with the root CA key and certificate, optional.")
        parser.add_argument("--password-env", default="CA_IMPORT_PASSWORD",
                            help="Environment variable holding the password (default CA_IMPORT_PASSWORD).")
        parser.add_argument("--replace", action="store_true",
                            help="Replace the active CA (devices enrolled under it must enroll again).")

    def handle(self, *, replace, password_env, **options):
        password = os.environ.get(password_env, "").encode() or None
        try:
            root_cert, root_key, issuing_cert, issuing_key = self._load(options, password)
            root, issuing, created = ca.import_ca(
                root_certificate=root_cert, root_key=root_key, issuing_certificate=issuing_cert,
                issuing_key=issuing_key, replace=replace)
        except ca.CaError as error:
            raise CommandError(str(error)) from None
        if not created:
            self.stdout.write("This certificate authority is already active; nothing to do.")
        else:
            self.stdout.write(self.style.SUCCESS("Imported the certificate authority."))
        self.stdout.write(f"Root CA:    {root.subject}  thumbprint {root.thumbprint}"
                          + ("" if root.encrypted_key_pem else "  (no private key stored)"))
        self.stdout.write(f"Issuing CA: {issuing.subject}  thumbprint {issuing.thumbprint}")

    def _load(self, options, password):
        if options["pkcs12"] and (options["issuing_cert"] or options["issuing_key"]):
            raise CommandError("Give either --pkcs12 or --issuing-cert/--issuing-key, not both.")
        if options["root_pkcs12"] and (options["root_cert"] or options["root_key"]):
            raise CommandError("Give either --root-pkcs12 or --root-cert/--root-key, not both.")
        chain = []
        if options["pkcs12"]:
            issuing_key, issuing_cert, chain = ca.load_pkcs12(_read(options["pkcs12"]), password, "issuing CA")
        elif options["issuing_cert"] and options["issuing_key"]:
            issuing_cert = ca.load_certificate(_read(options["issuing_cert"]), "issuing CA certificate")
            issuing_key = ca.load_private_key(_read(options["issuing_key"]), password, "issuing CA")
        else:
            raise CommandError("Give the issuing CA: --pkcs12, or --issuing-cert and --issuing-key.")

        root_key = None
        if options["root_pkcs12"]:
            root_key, root_cert, _chain = ca.load_pkcs12(_read(options["root_pkcs12"]), password, "root CA")
        elif options["root_cert"]:
            root_cert = ca.load_certificate(_read(options["root_cert"]), "root CA certificate")
            if options["root_key"]:
                root_key = ca.load_private_key(_read(options["root_key"]), password, "root CA")
        else:
            root_cert = next((cert for cert in chain if cert.subject == cert.issuer), None)
            if root_cert is None:
                raise CommandError("Give the root CA: --root-cert, --root-pkcs12, or a PKCS#12 whose chain holds it.")
        if options["root_key"] and not options["root_cert"]:
            raise CommandError("--root-key needs --root-cert.")
        return root_cert, root_key, issuing_cert, issuing_key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
