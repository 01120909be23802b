import secrets

from django.contrib.auth.models import Group
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.lockout import end_lockout
from accounts.models import AuditEvent, User
from accounts.roles import FULL_ADMIN

DEFAULT_EMAIL = "admin@example.com"


def generated_password():
    return secrets.token_urlsafe(12)


class Command(BaseCommand):
    help = ("Create the first administrator if the portal has none, printing its generated password "
            "once. Does nothing when an administrator already exists. With --reset-password, give an "
            "existing administrator a new generated password instead (the way back from a lost one).")

    def add_arguments(self, parser):
        parser.add_argument("--email", default=None,
                            help=f"Sign-in email of the administrator (to create: default {DEFAULT_EMAIL}; "
                                 "to reset: needed when there are several)")
        parser.add_argument("--reset-password", action="store_true",
                            help="Set a new generated password for an existing, active administrator, print it "
                                 "once and end the account's sign-in lockout. Audited (admin.password_reset).")

    def handle(self, *, email, reset_password, **options):
        if reset_password:
            return self.reset_password(email)
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            # In development manage.py runs only with DEBUG on (outside it, it asks for real secrets).
            prefix = "DEBUG=true .venv/bin/python " if settings.DEBUG else ""
            self.stdout.write("An administrator already exists; nothing to do. For a lost password, run "
                              f"{prefix}manage.py bootstrap_admin --reset-password --email <administrator's email>")
            return
        email = email or DEFAULT_EMAIL
        password = generated_password()
        user = User.objects.create_superuser(email, password, display_name="Administrator")
        user.groups.add(Group.objects.get_or_create(name=FULL_ADMIN)[0])
        AuditEvent.record(None, "admin.bootstrapped", user)
        self.stdout.write(self.style.SUCCESS("First administrator created. This password is shown only once:"))
        self.show(email, password)

    def reset_password(self, email):
        """Whoever runs manage.py holds the server's configuration and database already: they may give an
        administrator a new password. Only an active superuser: anyone else is managed from the console."""
        administrators = User.objects.filter(is_superuser=True, is_active=True)
        if email:
            user = administrators.filter(email__iexact=email.strip()).first()
            if user is None:
                raise CommandError(f"{email} is not an active administrator: nothing changed.")
        else:
            found = list(administrators.order_by("email")[:11])
            if len(found) != 1:
                names = ", ".join(u.email for u in found[:10]) or "none"
                raise CommandError(f"Name the administrator with --email (active administrators: {names}).")
            user = found[0]
        password = generated_password()
        with transaction.atomic():
            user.set_password(password)
            user.save(update_fields=["password"])
            end_lockout(user.email)
            AuditEvent.record(None, "admin.password_reset", user,
                              detail={"by": "manage.py bootstrap_admin --reset-password"})
        self.stdout.write(self.style.SUCCESS("New password set. It is shown only once:"))
        self.show(user.email, password)

    def show(self, email, password):
        self.stdout.write(f"    email:    {email}\n    password: {password}")
