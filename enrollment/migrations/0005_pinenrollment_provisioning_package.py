from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0004_entrasettings_tenant_domain'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='pinenrollment',
            options={'ordering': ['-created_at', '-pk'], 'verbose_name': 'provisioning package'},
        ),
    ]
