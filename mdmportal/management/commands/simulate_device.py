"""manage.py simulate_device: the simulator's command line (simulator/cli.py) run from the server's checkout.

`python -m simulator` takes the same options and needs no settings; this command is the same client,
kept for the tests and for an installation's operators used to manage.py."""
from django.core.management.base import BaseCommand, CommandError

from simulator import cli


class Command(BaseCommand):
    # The stream --pause-before-renew reads (call_command(..., stdin=...) in tests).
    stealth_options = ("stdin",)
    help = cli.DESCRIPTION

    def add_arguments(self, parser):
        cli.add_arguments(parser)

    def handle(self, *args, **options):
        run = cli.Run(stdout=self.stdout, stderr=self.stderr, stdin=options.pop("stdin", None),
                      success=self.style.SUCCESS)
        for name in ("verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color",
                     "skip_checks"):
            options.pop(name, None)
        try:
            run.run(**options)
        except (cli.UsageError, cli.RunFailed) as exc:
            raise CommandError(str(exc)) from None
