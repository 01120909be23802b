"""The roles as a fresh `migrate` leaves them (the test database is built by migrate)."""
from django.contrib.auth.models import Group

from accounts import roles


def test_roles_get_permissions_of_apps_installed_after_invitations(db):
    def codenames(role):
        return set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))

    assert {"view_device", "delete_device", "view_registrationpin"} <= codenames(roles.FULL_ADMIN)
    assert {"view_device", "delete_device"} <= codenames(roles.ENROLLMENT_ADMIN)
    assert "view_device" in codenames(roles.HELPDESK)
    assert "delete_device" not in codenames(roles.HELPDESK)
