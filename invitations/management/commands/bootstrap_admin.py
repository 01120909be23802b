import secrets

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from invitations.models import AuditEvent, User
from invitations.roles import FULL_ADMIN


class Command(BaseCommand):
    help = ("Create the first administrator if the portal has none, printing its generated password "
            "once. Does nothing when an administrator already exists.")

    def add_arguments(self, parser):
        parser.add_argument("--email", default="admin@example.com", help="Sign-in email of the administrator")

    def handle(self, *, email, **options):
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write("An administrator already exists; nothing to do.")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(email, password, display_name="Administrator")
        user.groups.add(Group.objects.get_or_create(name=FULL_ADMIN)[0])
        AuditEvent.record(None, "admin.bootstrapped", user)
        self.stdout.write(self.style.SUCCESS("First administrator created. This password is shown only once:"))
        self.stdout.write(f"    email:    {email}\n    password: {password}")
