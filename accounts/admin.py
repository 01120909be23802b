"""The console's pages of this app's models that need nothing of the apps above: user groups. The users,
the organisation and the audit log have theirs in invitations/admin.py (invitations, the enrollment
URL's regeneration, the CSV exports)."""
from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy

from .audit import AuditedAdminMixin
from .models import RegistrationSettings, UserGroup


class UserGroupForm(forms.ModelForm):
    class Meta:
        model = UserGroup
        fields = ["name", "priority", *RegistrationSettings.REGISTRATION_FIELDS, "members"]
        widgets = {"registration_mode": forms.RadioSelect}


@admin.register(UserGroup)
class UserGroupAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """User groups with their own registration authentication settings."""

    form = UserGroupForm
    list_display = ["name", "priority", "registration_mode", "pin_length", "pin_lifetime_hours",
                    "pin_renewal_allowed", "member_count"]
    search_fields = ["name", "members__email"]
    filter_horizontal = ["members"]
    fieldsets = [
        (None, {"fields": ["name", "priority"]}),
        (gettext_lazy("Registration authentication"), {"fields": RegistrationSettings.REGISTRATION_FIELDS}),
        (gettext_lazy("Members"), {"fields": ["members"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description=gettext_lazy("members"), ordering="member_total")
    def member_count(self, group):
        return group.member_total
