"""The Microsoft Graph connector's own tenant moves to the Entra ID settings, where it is now entered
once (autopilot migration 0004), unless those already name one."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from enrollment.models import EntraSettings

BEFORE = [("autopilot", "0003_verbose_names_translated")]
AFTER = [("autopilot", "0004_tenant_in_entra_settings")]
GUID = "1537de22-988c-4e93-b8a5-83890f34a69b"


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.parametrize("connector_tenant, entra_before, entra_after", [
    (GUID.upper(), {}, {"tenant_ids": [GUID], "tenant_domain": ""}),
    ("Contoso.onmicrosoft.com", {}, {"tenant_ids": [], "tenant_domain": "contoso.onmicrosoft.com"}),
    (GUID, {"tenant_ids": ["aaaaaaaa-0000-4000-8000-000000000000"]},
     {"tenant_ids": ["aaaaaaaa-0000-4000-8000-000000000000"], "tenant_domain": ""}),
    ("", {}, None),
])
def test_the_connector_tenant_moves_to_the_entra_settings(transactional_db, connector_tenant, entra_before,
                                                          entra_after):
    old = migrate(BEFORE)
    try:
        old.get_model("autopilot", "GraphConnector").objects.create(pk=1, tenant_id=connector_tenant)
        if entra_before:  # enrollment stays migrated: its current model matches the table
            EntraSettings.objects.create(pk=1, **entra_before)
        new = migrate(AFTER)
        entra = new.get_model("enrollment", "EntraSettings").objects.filter(pk=1).values(
            "tenant_ids", "tenant_domain").first()
        assert entra == entra_after
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
