"""Administrator roles as Django groups. Synced after every migrate, so permissions of models added
later (devices, Autopilot) reach the roles without a data migration."""
from django.db.models import Q

FULL_ADMIN = "Full administrator"
ENROLLMENT_ADMIN = "Enrollment administrator"
HELPDESK = "Helpdesk (read-only)"
ROLES = [FULL_ADMIN, ENROLLMENT_ADMIN, HELPDESK]

PRODUCT_APPS = ["accounts", "invitations", "enrollment", "management", "autopilot"]
# Organisation-wide settings (wizard, regenerate URL, roles themselves) stay with full administrators.
ENROLLMENT_ADMIN_MODELS = ["user", "invitation", "invitationemail", "usergroup"]
EVERYONE_VIEWS = ["view_auditevent", "view_organisation", "view_urlrotation"]


def is_full_admin(user):
    """Superusers and members of the "Full administrator" role."""
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=FULL_ADMIN).exists()


def role_permissions(role):
    from django.contrib.auth.models import Permission

    perms = Permission.objects.all()
    if role == FULL_ADMIN:
        return perms
    views = Q(content_type__app_label__in=PRODUCT_APPS, codename__startswith="view_")
    if role == HELPDESK:
        return perms.filter(views)
    return perms.filter(
        views
        | Q(content_type__app_label__in=["enrollment", "management", "autopilot"])
        | Q(content_type__app_label__in=["accounts", "invitations"], content_type__model__in=ENROLLMENT_ADMIN_MODELS)
    ).exclude(codename__in=["add_auditevent", "change_auditevent", "delete_auditevent"])


def sync_roles(sender=None, **kwargs):
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group

    if sender is not None and sender.name != "accounts":
        return
    # post_migrate reaches accounts before the apps listed after it (invitations, enrollment, management, autopilot),
    # whose permissions would otherwise be missing from the roles on a fresh database: create them first.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(role_permissions(role))
