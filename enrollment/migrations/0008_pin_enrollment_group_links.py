"""PIN enrollments link to their configuration groups instead of keeping their names.

Each name stored in the JSON list becomes a link to the group of that name; a name no group has yet
gets a new, empty group of that name (its devices join it, an administrator gives it settings).
Backwards, the links become the list of names again.
"""
from django.db import migrations, models

MAX_NAME = 100  # ConfigurationGroup.name


def names_to_links(apps, schema_editor):
    PinEnrollment = apps.get_model("enrollment", "PinEnrollment")
    ConfigurationGroup = apps.get_model("enrollment", "ConfigurationGroup")
    for pin_enrollment in PinEnrollment.objects.exclude(configuration_groups=[]):
        for name in pin_enrollment.configuration_groups or []:
            name = str(name).strip()[:MAX_NAME]
            if not name:
                continue
            group, _ = ConfigurationGroup.objects.get_or_create(name=name, defaults={
                "description": f"Made from the group names of PIN enrollment {pin_enrollment.name}."})
            pin_enrollment.configuration_group_links.add(group)


def links_to_names(apps, schema_editor):
    PinEnrollment = apps.get_model("enrollment", "PinEnrollment")
    for pin_enrollment in PinEnrollment.objects.all():
        names = list(pin_enrollment.configuration_group_links.order_by("name").values_list("name", flat=True))
        if names:
            pin_enrollment.configuration_groups = names
            pin_enrollment.save(update_fields=["configuration_groups"])


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0007_configuration_group_methods"),
    ]

    operations = [
        migrations.AddField(
            model_name="pinenrollment",
            name="configuration_group_links",
            field=models.ManyToManyField(blank=True, related_name="+", to="enrollment.configurationgroup"),
        ),
        migrations.RunPython(names_to_links, links_to_names),
        migrations.RemoveField(model_name="pinenrollment", name="configuration_groups"),
        migrations.RenameField(model_name="pinenrollment", old_name="configuration_group_links",
                               new_name="configuration_groups"),
        migrations.AlterField(
            model_name="pinenrollment",
            name="configuration_groups",
            field=models.ManyToManyField(
                blank=True, related_name="pin_enrollments", to="enrollment.configurationgroup",
                help_text="Devices enrolled with the package join these groups (by hand) and get their settings"),
        ),
    ]
