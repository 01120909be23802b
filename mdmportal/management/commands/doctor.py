import ssl

from django.core.management.base import BaseCommand, CommandError

from mdmportal import doctor


class Command(BaseCommand):
    help = ("Check the deployment as an operator would: public host names, DNS of enterpriseenrollment.<domain>, "
            "the TLS certificates, clock skew, the CA and its key passphrase, SMTP, the Celery broker, workers "
            "and beat, pending migrations. Prints one line per check (OK, WARN or FAIL and the fix) and exits "
            "non-zero when a check fails. Reads only; safe to run at any time.")

    def add_arguments(self, parser):
        parser.add_argument("--domain", action="append", dest="domains", metavar="DOMAIN",
                            help="An email domain whose autodiscovery name to check (repeatable). "
                                 "Default: the domains of the active users.")
        parser.add_argument("--resolve", action="append", default=[], metavar="HOST:ADDRESS",
                            help="Use ADDRESS for HOST instead of DNS, as curl --resolve (repeatable); "
                                 "to check a new server before the DNS records move.")
        parser.add_argument("--ca-file", metavar="PEM",
                            help="Trust these CA certificates for TLS instead of the system's (a private PKI).")
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds per network check (default 5).")

    def handle(self, *, domains, resolve, ca_file, timeout, **options):
        pinned = {}
        for item in resolve:
            host, sep, address = item.rpartition(":")
            if not sep or not host or not address:
                raise CommandError(f"--resolve takes HOST:ADDRESS, not {item!r}")
            pinned[host] = address
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        checker = doctor.Doctor(domains=domains, pinned=pinned, tls_context=context, timeout=timeout)
        failed = 0
        for result in checker.run():
            style = {doctor.OK: self.style.SUCCESS, doctor.WARN: self.style.WARNING}.get(result.status, self.style.ERROR)
            self.stdout.write(style(result.line()))
            failed += result.status == doctor.FAIL
        if failed:
            raise CommandError(f"{failed} check(s) failed")
