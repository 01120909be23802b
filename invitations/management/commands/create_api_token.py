from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from invitations.models import AuditEvent, User


class Command(BaseCommand):
    help = (
        "Print the API token of an active administrator (console access), creating it if needed. "
        "With --rotate, replace the existing token: the old one stops working at once. "
        "Use it as 'Authorization: Token <token>' on /api/v1/."
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
        with transaction.atomic():
            token = Token.objects.select_for_update().filter(user=user).first()
            if token is None or rotate:
                action = "api_token.rotated" if token is not None else "api_token.created"
                if token is not None:
                    token.delete()
                token = Token.objects.create(user=user)
                AuditEvent.record(None, action, user, detail={"via": "create_api_token"})
        # The token alone on stdout, so scripts can capture it: TOKEN=$(manage.py create_api_token ...)
        self.stdout.write(token.key)
