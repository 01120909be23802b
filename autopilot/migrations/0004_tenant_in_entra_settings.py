"""The tenant is entered once, in the Entra ID settings: the connector's own tenant moves there (as the
first tenant id when it is a GUID, else as the tenant's domain) unless those already hold one."""
import uuid

from django.db import migrations


def move_tenant(apps, schema_editor):
    GraphConnector = apps.get_model("autopilot", "GraphConnector")
    EntraSettings = apps.get_model("enrollment", "EntraSettings")
    connector = GraphConnector.objects.filter(pk=1).first()
    tenant = (connector.tenant_id.strip() if connector else "").lower()
    if not tenant:
        return
    entra, _created = EntraSettings.objects.get_or_create(pk=1)
    try:
        uuid.UUID(tenant)
    except ValueError:
        if not entra.tenant_domain:
            entra.tenant_domain = tenant
    else:
        if not entra.tenant_ids:
            entra.tenant_ids = [tenant]
    entra.save()


class Migration(migrations.Migration):

    dependencies = [
        ('autopilot', '0003_verbose_names_translated'),
        ('enrollment', '0005_entrasettings_tenant_domain'),
    ]

    operations = [
        migrations.RunPython(move_tenant, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='graphconnector',
            name='tenant_id',
        ),
    ]
