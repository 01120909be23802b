"""Administrator roles as Django groups. Synced after every migrate, so permissions of models added
later (devices, Autopilot) reach the roles without a data migration."""
from django.db.models import Q

FULL_ADMIN = "Full administrator"
ENROLLMENT_ADMIN = "Enrollment administrator"
HELPDESK = "Helpdesk (read-only)"
ROLES = [FULL_ADMIN, ENROLLMENT_ADMIN, HELPDESK]

PRODUCT_APPS = ["invitations", "enrollment", "autopilot"]
# Organisation-wide settings (wizard, regenerate URL, roles themselves) stay with full administrators.
ENROLLMENT_ADMIN_MODELS = ["user", "invitation", "invitationemail"]
EVERYONE_VIEWS = ["view_auditevent", "view_organisation", "view_urlrotation"]


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
        | Q(content_type__app_label__in=["enrollment", "autopilot"])
        | Q(content_type__app_label="invitations", content_type__model__in=ENROLLMENT_ADMIN_MODELS)
    ).exclude(codename__in=["add_auditevent", "change_auditevent", "delete_auditevent"])


def sync_roles(sender=None, **kwargs):
    from django.apps import apps
    from django.contrib.auth.models import Group

    # post_migrate is sent once per app, in INSTALLED_APPS order, and each app's permissions are created
    # by its own signal: only after the last app's are they all there (enrollment and autopilot come
    # after invitations), so a fresh install would otherwise give the roles no device permissions.
    last_app = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    if sender is not None and sender.label != last_app.label:
        return
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(role_permissions(role))
