from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken

from accounts.models import User
from invitations import api_tokens


class Command(BaseCommand):
    help = (
        "Make an API token for an active administrator (console access) and print it: this is the only "
        "time it is shown, since only its hash is stored. An administrator has one token: with --rotate, "
        "replace the existing one (it stops working at once). Use it as 'Authorization: Token <token>' "
        "on /api/v1/."
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="Email of the administrator the token acts as.")
        parser.add_argument("--rotate", action="store_true",
                            help="Replace the existing token with a new one.")

    def handle(self, *, email, rotate, **options):
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        if not (user.is_active and user.is_staff):
            raise CommandError(f"{user.email} is not an active administrator: API tokens are only "
                               "for users with console access.")
        if not rotate and AuthToken.objects.filter(user=user).exists():
            raise CommandError(f"{user.email} already has an API token. It was shown once, when it was made, "
                               "and is not stored: use --rotate to replace it with a new one.")
        _instance, token = api_tokens.issue(user, via="create_api_token")
        # The token alone on stdout, so scripts can capture it: TOKEN=$(manage.py create_api_token ...)
        self.stdout.write(token)
