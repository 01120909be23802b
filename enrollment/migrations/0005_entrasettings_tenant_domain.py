from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0004_verbose_names_translated'),
    ]

    operations = [
        migrations.AddField(
            model_name='entrasettings',
            name='tenant_domain',
            field=models.CharField(blank=True, help_text="The tenant's initial domain, such as contoso.onmicrosoft.com: offline Autopilot profile files name the tenant by it", max_length=253, verbose_name="tenant's domain"),
        ),
        migrations.AlterField(
            model_name='entrasettings',
            name='tenant_ids',
            field=models.JSONField(blank=True, default=list, help_text="Directory (tenant) ids whose tokens are accepted (lowercase GUIDs); the first is the organisation's own tenant", verbose_name='tenant ids'),
        ),
    ]
