"""Forms of the enrollment console pages."""
from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import ppkg
from .models import PinEnrollment


def check_upn_is_free(upn, instance=None):
    """A service identity must name nothing else: the enrollment service tries PIN enrollments first,
    so a user's email or MDM username here would lock that user out of enrolling."""
    others = PinEnrollment.objects.exclude(pk=instance.pk) if instance is not None else PinEnrollment.objects.all()
    if others.filter(upn__iexact=upn).exists():
        raise forms.ValidationError(_("Another provisioning package already uses this service identity."))
    if get_user_model().objects.for_login(upn) is not None:
        raise forms.ValidationError(_("This is a user's email or MDM username: choose a name of its own."))


class PinEnrollmentForm(forms.ModelForm):
    class Meta:
        model = PinEnrollment
        fields = ["name", "upn", "owner", "expires_at", "max_devices"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "upn" in self.fields:
            self.fields["upn"].required = False
            self.fields["upn"].help_text = _(
                "The name the package signs in with. Leave empty for enroll-<name>@%(domain)s.") % {
                    "domain": ppkg.default_domain()}
        if "owner" in self.fields:
            self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True)
        if self.instance.pk is None:
            self.initial.setdefault("expires_at", timezone.now() + timedelta(days=ppkg.DEFAULT_VALIDITY_DAYS))
            self.initial.setdefault("max_devices", ppkg.DEFAULT_MAX_DEVICES)

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at <= timezone.now() and "expires_at" in self.changed_data:
            raise forms.ValidationError(_("Choose a moment in the future."))
        return expires_at

    def clean(self):
        cleaned = super().clean()
        if "upn" in self.fields and not self.errors:
            cleaned["upn"] = (cleaned.get("upn") or ppkg.default_upn(cleaned["name"])).strip().lower()
            try:
                check_upn_is_free(cleaned["upn"], self.instance if self.instance.pk else None)
            except forms.ValidationError as error:
                self.add_error("upn", error)
        return cleaned

    def validate_unique(self):
        # check_upn_is_free covers the UPN, case-insensitively, with a clearer message.
        pass


def with_options(form_class):
    """`form_class` with a field for each option of the apps above this one (ppkg.register_option),
    showing an existing PIN enrollment's values."""
    options = ppkg.options()
    if not options:
        return form_class

    def __init__(self, *args, **kwargs):
        form_class.__init__(self, *args, **kwargs)
        if self.instance.pk is not None:
            for option in options:
                self.initial.setdefault(option.name, option.initial(self.instance))

    fields = {option.name: option.form_field() for option in options}
    return type(form_class.__name__, (form_class,), {**fields, "__init__": __init__})
