"""Console pages for configuration groups: members by hand, by user and by rule, settings from the
catalogue or raw OMA-URIs, and per-setting compliance. Every saved change reconciles the devices it
can affect (management/reconcile.py), after commit, in Celery."""
from django import forms
from django.contrib import admin
from django.utils.translation import gettext as _

from accounts.audit import AuditedAdminMixin
from enrollment.models import Device

from . import catalogue, reconcile
from .models import ConfigurationGroup, GroupSetting


class GroupSettingForm(forms.ModelForm):
    key = forms.ChoiceField(label="Setting", choices=catalogue.choices, required=False)

    class Meta:
        model = GroupSetting
        fields = ["key", "value", "loc_uri", "format", "verb", "removal", "reset_value"]
        widgets = {"value": forms.TextInput(attrs={"size": 12}), "loc_uri": forms.TextInput(attrs={"size": 50})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("loc_uri", "format"):
            self.fields[name].required = False
        self.fields["loc_uri"].help_text = "Raw settings only; catalogue settings know their node."
        # The catalogue's values are listed under the table (change_form.html): in a column's header they made
        # the form thousands of pixels wide.
        self.fields["value"].help_text = _("A catalogue setting takes one of the values listed under the table.")

    def clean(self):
        data = super().clean()
        entry = catalogue.CATALOGUE.get(data.get("key") or "")
        if entry is not None:
            # The model's clean() copies the rest; the node must be there for the uniqueness check.
            data["loc_uri"], data["format"] = entry.loc_uri, entry.format
        elif not data.get("loc_uri"):
            self.add_error("loc_uri", "A raw setting needs its LocURI.")
        return data


class GroupSettingInline(admin.StackedInline):
    """Stacked: a setting's seven fields side by side were wider than a laptop's window."""

    model = GroupSetting
    form = GroupSettingForm
    extra = 1


@admin.register(ConfigurationGroup)
class ConfigurationGroupAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "priority", "rule_enabled", "setting_count", "description"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["devices", "users"]
    inlines = [GroupSettingInline]
    change_form_template = "admin/management/configurationgroup/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "description", "priority"],
                "description": "When several groups of a device set the same LocURI, the group with the lowest "
                               "priority number wins (on a tie, the older group)."}),
        ("Members", {"fields": ["devices", "users"]}),
        ("Membership rule", {"fields": ["rule_enabled", "rule_kind", "rule_os_version_prefix", "rule_method",
                                        "rule_enrollment_type", "rule_name_pattern"]}),
    ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "catalogue": catalogue.CATALOGUE.values()}
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="Settings")
    def setting_count(self, group):
        return group.settings.count()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        group = self.get_object(request, object_id)
        extra_context = {**(extra_context or {})}
        if group is not None:
            reasons = group.member_reasons()
            members = Device.objects.filter(pk__in=list(reasons)).select_related("user")
            extra_context["members"] = [(device, reasons[device.pk]) for device in members]
            extra_context["compliance"] = reconcile.compliance(group)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        reconcile.schedule_group(form.instance)

    def delete_model(self, request, obj):
        reconcile.schedule_group(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            reconcile.schedule_group(group)
        super().delete_queryset(request, queryset)
