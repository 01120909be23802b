"""The configuration groups of a provisioning-package PIN enrollment: devices enrolled with the package
join them by hand, so the reconciler queues their settings for the device's first session. An option
of enrollment's PIN enrollments (enrollment.ppkg.register_option), in their console form and API."""
from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from enrollment.ppkg import PackageOption

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
        help_text="Names of the configuration groups enrolled devices join (the groups must exist).")


def initial(pin_enrollment):
    return list(pin_enrollment.configuration_groups.all())


def save(pin_enrollment, groups):
    groups = list(dict.fromkeys(groups or []))  # a group given twice is one group
    pin_enrollment.configuration_groups.set(groups)
    return [group.name for group in groups]


def enrolled(pin_enrollment, device):
    groups = list(pin_enrollment.configuration_groups.all())
    if groups:
        device.configuration_groups.add(*groups)
    return [group.name for group in groups]


OPTION = PackageOption(NAME, form_field, api_field, initial, save, enrolled, prefetch=(NAME,))
