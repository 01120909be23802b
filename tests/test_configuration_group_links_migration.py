"""The data migrations that turn the configuration group names of Autopilot profiles and PIN
enrollments into links to groups, run forwards and backwards on a real database."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("autopilot", "0001_autopilot"), ("enrollment", "0007_configuration_group_methods")]
AFTER = [("autopilot", "0002_configuration_group_links"), ("enrollment", "0008_pin_enrollment_group_links")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_names(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_names_become_links_to_existing_or_new_groups_and_come_back(at_names):
    apps = at_names
    Group = apps.get_model("enrollment", "ConfigurationGroup")
    sales = Group.objects.create(name="Sales", priority=5)
    owner = apps.get_model("invitations", "User").objects.create(email="pool@example.com", password="!")
    apps.get_model("autopilot", "Profile").objects.create(name="Laptops", configuration_groups="Sales\n New hires \n\n")
    apps.get_model("autopilot", "Profile").objects.create(name="Plain")
    apps.get_model("enrollment", "PinEnrollment").objects.create(
        name="Lab", upn="enroll-lab@example.com", pin_hash="!", owner=owner, max_devices=5,
        expires_at=datetime.now(UTC) + timedelta(days=1), configuration_groups=["Sales", "Lab PCs"])

    apps = migrate(AFTER)
    Group = apps.get_model("enrollment", "ConfigurationGroup")
    profile = apps.get_model("autopilot", "Profile").objects.get(name="Laptops")
    assert sorted(profile.configuration_groups.values_list("name", flat=True)) == ["New hires", "Sales"]
    assert not apps.get_model("autopilot", "Profile").objects.get(name="Plain").configuration_groups.exists()
    pin_enrollment = apps.get_model("enrollment", "PinEnrollment").objects.get()
    assert sorted(pin_enrollment.configuration_groups.values_list("name", flat=True)) == ["Lab PCs", "Sales"]
    assert Group.objects.get(name="Sales").priority == 5  # the existing group is linked, not copied
    assert "Laptops" in Group.objects.get(name="New hires").description
    assert Group.objects.count() == 3

    apps = migrate(BEFORE)
    assert apps.get_model("autopilot", "Profile").objects.get(name="Laptops").configuration_groups == "New hires\nSales"
    assert apps.get_model("autopilot", "Profile").objects.get(name="Plain").configuration_groups == ""
    assert apps.get_model("enrollment", "PinEnrollment").objects.get().configuration_groups == ["Lab PCs", "Sales"]
