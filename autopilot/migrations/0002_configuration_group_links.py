"""Autopilot profiles link to their configuration groups instead of keeping their names as text.

Each name (one per line) becomes a link to the group of that name; a name no group has yet gets a
new, empty group of that name. Backwards, the links become the lines of names again.
"""
from django.db import migrations, models

MAX_NAME = 100  # ConfigurationGroup.name


def names_to_links(apps, schema_editor):
    Profile = apps.get_model("autopilot", "Profile")
    ConfigurationGroup = apps.get_model("enrollment", "ConfigurationGroup")
    for profile in Profile.objects.exclude(configuration_groups=""):
        for line in profile.configuration_groups.splitlines():
            name = line.strip()[:MAX_NAME]
            if not name:
                continue
            group, _ = ConfigurationGroup.objects.get_or_create(name=name, defaults={
                "description": f"Made from the group names of Autopilot profile {profile.name}."})
            profile.configuration_group_links.add(group)


def links_to_names(apps, schema_editor):
    Profile = apps.get_model("autopilot", "Profile")
    for profile in Profile.objects.all():
        names = list(profile.configuration_group_links.order_by("name").values_list("name", flat=True))
        if names:
            profile.configuration_groups = "\n".join(names)
            profile.save(update_fields=["configuration_groups"])


class Migration(migrations.Migration):

    dependencies = [
        ("autopilot", "0001_autopilot"),
        ("enrollment", "0007_configuration_group_methods"),
    ]

    operations = [
        migrations.AddField(
            model_name="profile",
            name="configuration_group_links",
            field=models.ManyToManyField(blank=True, related_name="+", to="enrollment.configurationgroup"),
        ),
        migrations.RunPython(names_to_links, links_to_names),
        migrations.RemoveField(model_name="profile", name="configuration_groups"),
        migrations.RenameField(model_name="profile", old_name="configuration_group_links",
                               new_name="configuration_groups"),
        migrations.AlterField(
            model_name="profile",
            name="configuration_groups",
            field=models.ManyToManyField(
                blank=True, related_name="autopilot_profiles", to="enrollment.configurationgroup",
                help_text="Devices of this profile join these groups (by hand) when they enroll, and get their settings."),
        ),
    ]
