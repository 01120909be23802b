"""Forms of the administrators' console: users, the organisation, the CSV import and the wizard."""
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import AuthPolicy, Organisation, RegistrationSettings, User, UserGroup
from accounts.roles import ROLES

from . import user_import

MAX_CSV_BYTES = 5 * 1024 * 1024


def normalise_enrollment_host(value):
    """`enterpriseenrollment.contoso.com` or `https://enterpriseenrollment.contoso.com/` →
    `https://enterpriseenrollment.contoso.com`. Windows only enrolls against an https server."""
    value = value.strip()
    if "://" not in value:
        value = f"https://{value}"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(_("This is not a host name."), code="invalid") from None
    if parts.scheme.lower() != "https":
        raise ValidationError(_("Devices enroll only over https: give the host name or an https:// address."),
                              code="not_https")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(_("Give only the host name (for example enterpriseenrollment.contoso.com), "
                                "without a path."), code="has_path")
    host = (parts.hostname or "").lower()
    url = f"https://{host}" + (f":{port}" if port else "")
    try:
        URLValidator(schemes=["https"])(url)
    except ValidationError:
        raise ValidationError(_("“%(host)s” is not a host name.") % {"host": parts.netloc}, code="invalid") from None
    return url


class UserFieldsMixin:
    """Email and MDM username are compared case-insensitively, as sign-in does."""

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A user with this email already exists."), code="unique")
        return email

    def clean_mdm_username(self):
        name = (self.cleaned_data.get("mdm_username") or "").strip()
        if not name:
            return None
        taken = User.objects.filter(Q(mdm_username__iexact=name) | Q(email__iexact=name))
        if taken.exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("Another user already signs in with this name."), code="unique")
        return name


class UserGroupsField(forms.ModelMultipleChoiceField):
    """Membership of the user groups (registration settings), edited from the user's side."""

    def __init__(self, **kwargs):
        super().__init__(
            queryset=UserGroup.objects.all(), required=False, label=gettext_lazy("User groups"),
            widget=forms.CheckboxSelectMultiple,
            help_text=gettext_lazy("Their registration settings apply instead of the organisation's default; "
                                   "in several groups, the one with the lowest priority number wins."),
            **kwargs,
        )


class UserGroupsMixin:
    """Loads and saves the `user_groups` field (the reverse side of UserGroup.members), which each form
    declares (the admin only accepts declared fields)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial.setdefault("user_groups", list(self.instance.user_groups.values_list("pk", flat=True)))

    def _save_m2m(self):
        super()._save_m2m()
        self.instance.user_groups.set(self.cleaned_data.get("user_groups") or [])


class UserAddForm(UserFieldsMixin, UserGroupsMixin, forms.ModelForm):
    user_groups = UserGroupsField()
    send_invitation = forms.BooleanField(
        label=gettext_lazy("Send invitation"), required=False, initial=True,
        help_text=gettext_lazy("Email the user an invitation link and the enrollment URL once saved."),
    )

    class Meta:
        model = User
        fields = ["email", "mdm_username", "display_name", "language", "device_limit"]

    def save(self, commit=True):
        user = super().save(commit=False)
        # The user sets a password by following the invitation; until then nobody can sign in as them.
        user.set_unusable_password()
        if commit:
            user.save()
        return user


class UserChangeForm(UserFieldsMixin, UserGroupsMixin, forms.ModelForm):
    """The fields any administrator with change permission edits."""

    user_groups = UserGroupsField()

    class Meta:
        model = User
        fields = ["email", "mdm_username", "display_name", "language", "device_limit", "is_active"]


class AdministratorChangeForm(UserChangeForm):
    """What only full administrators see: console access and the administrator's role."""

    acting_user = None  # set by the ModelAdmin: the administrator filling in the form
    role = forms.ChoiceField(
        label=gettext_lazy("Role"), required=False,
        choices=[("", gettext_lazy("— none —"))] + [(role, gettext_lazy(role)) for role in ROLES],
        help_text=gettext_lazy("What this administrator may do in the console."),
    )

    class Meta(UserChangeForm.Meta):
        fields = UserChangeForm.Meta.fields + ["is_staff"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            current = self.instance.groups.filter(name__in=ROLES).values_list("name", flat=True).first()
            self.initial.setdefault("role", current or "")

    def clean(self):
        cleaned = super().clean()
        is_staff, role = cleaned.get("is_staff"), cleaned.get("role")
        if is_staff and not role and not self.instance.is_superuser:
            self.add_error("role", _("Choose a role for someone with console access."))
        if role and not is_staff:
            self.add_error("role", _("Only users with console access have a role."))
        if self.acting_user is not None and self.instance.pk == self.acting_user.pk and not is_staff:
            self.add_error("is_staff", _("You cannot remove your own console access."))
        return cleaned

    def save_role(self):
        user = self.instance
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        if self.cleaned_data.get("role"):
            user.groups.add(Group.objects.get(name=self.cleaned_data["role"]))


class OrganisationForm(forms.ModelForm):
    enrollment_base_url = forms.CharField(
        label=gettext_lazy("Enrollment server address"), required=False, max_length=200,
        help_text=gettext_lazy("The host devices reach, e.g. enterpriseenrollment.contoso.com. "
                               "Empty: the address the portal was installed with."),
    )

    class Meta:
        model = Organisation
        fields = ["name", "enrollment_base_url", "auth_policy", *RegistrationSettings.REGISTRATION_FIELDS]
        widgets = {"auth_policy": forms.RadioSelect, "registration_mode": forms.RadioSelect}

    def clean_enrollment_base_url(self):
        value = self.cleaned_data["enrollment_base_url"].strip()
        return normalise_enrollment_host(value) if value else ""


class CsvImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy("Header line required. Columns: email, display_name, language (fr or en), "
                               "mdm_username, device_limit. Only email is required."),
    )
    send_invitations = forms.BooleanField(label=gettext_lazy("Send invitations"), required=False, initial=True)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CSV_BYTES:
            raise ValidationError(_("The file is larger than 5 MB; split it."), code="too_big")
        try:
            return user_import.read_csv(upload.read())
        except user_import.FileError as exc:
            raise ValidationError(str(exc), code="unreadable") from None


class OrganisationNameForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Organisation name"), max_length=200)


class EnrollmentHostForm(forms.Form):
    host = forms.CharField(
        label=gettext_lazy("Enrollment host name"), max_length=200,
        help_text=gettext_lazy("The name devices reach this server at, e.g. enterpriseenrollment.contoso.com "
                               "(or https://enterpriseenrollment.contoso.com)."),
    )
    auth_policy = forms.ChoiceField(
        label=gettext_lazy("Sign-in method"), choices=AuthPolicy.choices, widget=forms.RadioSelect, required=False,
        help_text=gettext_lazy("On-premise: users type their password (or registration PIN) in Windows. "
                               "Federated: Windows opens this portal's sign-in page. You can change it later "
                               "on the Organisation page."),
    )

    def clean_host(self):
        return normalise_enrollment_host(self.cleaned_data["host"])


class FirstUsersForm(forms.Form):
    users = forms.CharField(
        label=gettext_lazy("First users"), required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70,
                                     "placeholder": "alice@contoso.com, Alice Martin, fr\nbob@contoso.com"}),
        help_text=gettext_lazy("One user per line: email, then optionally a display name and a language (fr or en)."),
    )
    send_invitations = forms.BooleanField(label=gettext_lazy("Send invitations"), required=False, initial=True)

    def clean_users(self):
        rows = user_import.read_lines(self.cleaned_data["users"])
        report = user_import.validate(rows)
        errors = [_("Line %(line)d (%(email)s): %(errors)s")
                  % {"line": row.line, "email": row.email or "?", "errors": "; ".join(row.errors)}
                  for row in report.failed_rows]
        if errors:
            raise ValidationError(errors)
        return rows
