from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0005_pinenrollment_provisioning_package'),
    ]

    operations = [
        migrations.AlterField(
            model_name='entrasettings',
            name='jwks_mirror_url',
            field=models.URLField(blank=True, help_text="An https address on your network serving a copy of Microsoft's signing keys for the tenant (login.microsoftonline.com, the tenant id, /discovery/v2.0/keys)", max_length=500, verbose_name='JWKS mirror URL'),
        ),
    ]
