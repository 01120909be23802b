"""The configuration groups of a provisioning-package PIN enrollment: devices enrolled with the package
join them by hand, so the reconciler queues their settings for the device's first session. An option
of enrollment's PIN enrollments (enrollment.ppkg.register_option), in their console form and API."""
from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from enrollment.ppkg import PackageOption
from mdmportal.rows import Columns, statement

from .models import ConfigurationGroup

NAME = "configuration_groups"
HELP = _("Devices enrolled with the package join these groups (by hand) and get their settings.")


def form_field():
    return forms.ModelMultipleChoiceField(
        queryset=ConfigurationGroup.objects.all(), required=False, label=_("Configuration groups"), help_text=HELP,
        widget=FilteredSelectMultiple(_("configuration groups"), is_stacked=False))


def api_field():
    return serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=ConfigurationGroup.objects.all(),
        help_text=_("Names of the configuration groups enrolled devices join (the groups must exist)."))


def initial(pin_enrollment):
    return list(pin_enrollment.configuration_groups.all())


def save(pin_enrollment, groups):
    groups = list(dict.fromkeys(groups or []))  # a group given twice is one group
    pin_enrollment.configuration_groups.set(groups)
    return [group.name for group in groups]


def enrolled(pin_enrollment, device):
    """The new `device` joins the package's groups; their names, in the groups' order. On PostgreSQL
    one statement reads the groups and adds the memberships (the ORM's read and add() cost a package
    enrollment more CPU than the rest of its writes). No m2m_changed signal is sent: nothing listens,
    since the reconciler compares a device's memberships in SQL (management/reconcile.py)."""
    if connection.vendor == "postgresql":
        return _join_groups_in_one(pin_enrollment.pk, device.pk)
    groups = list(pin_enrollment.configuration_groups.all())
    if groups:
        device.configuration_groups.add(*groups)
    return [group.name for group in groups]


def _join_groups_in_one(pin_enrollment_id, device_id):
    with connection.cursor() as cursor:
        cursor.execute(_join_groups_sql(connection), [device_id, pin_enrollment_id])
        return [name for (name,) in cursor.fetchall()]


@statement
def _join_groups_sql(connection):
    def q(name):
        return connection.ops.quote_name(name)

    packages, devices = ConfigurationGroup.pin_enrollments.through, ConfigurationGroup.devices.through
    group_of_package = q(packages._meta.get_field("configurationgroup").column)
    package = q(packages._meta.get_field("pinenrollment").column)
    group_of_device = q(devices._meta.get_field("configurationgroup").column)
    member = q(devices._meta.get_field("device").column)
    groups = Columns(ConfigurationGroup, "g")
    return (f"WITH joined AS (INSERT INTO {q(devices._meta.db_table)} ({group_of_device}, {member}) "
            f"SELECT p.{group_of_package}, %s FROM {q(packages._meta.db_table)} p WHERE p.{package} = %s "
            f"RETURNING {group_of_device}) "
            f"SELECT {groups.column(connection, 'name')} FROM joined j JOIN {q(ConfigurationGroup._meta.db_table)} g "
            f"ON {groups.column(connection, 'pk')} = j.{group_of_device} "
            f"ORDER BY {groups.order(connection, ConfigurationGroup._meta.ordering)}")


OPTION = PackageOption(NAME, form_field, api_field, initial, save, enrolled, prefetch=(NAME,))
