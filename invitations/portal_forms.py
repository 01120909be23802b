"""Forms of the end-user portal: signing in (by email or MDM username) and following an invitation."""
from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import SetPasswordForm
from django.utils.translation import gettext_lazy as _

from accounts.models import User


def authenticate_account(request, account_email, password):
    """Authenticate against the account's email.

    django-axes reads the username from the `email` credential (AXES_USERNAME_FORM_FIELD defaults to
    USERNAME_FIELD), so passing the resolved email makes the per-account lockout count every attempt
    on the account, whether the person typed the email or the MDM username.
    """
    return authenticate(request, email=account_email, password=password)


class SignInForm(forms.Form):
    """The /login form. Same interface as AuthenticationForm so Django's LoginView can drive it."""

    identity = forms.CharField(
        label=_("Email or username"),
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username",
                                      "autocapitalize": "none", "spellcheck": "false"}),
    )
    password = forms.CharField(
        label=_("Password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        "invalid_login": _("This email or username and password do not match an account. "
                           "Check them and try again."),
    }

    def __init__(self, request=None, *args, **kwargs):
        self.request = request
        self.user_cache = None
        super().__init__(*args, label_suffix="", **kwargs)

    def clean(self):
        identity = self.cleaned_data.get("identity", "").strip()
        password = self.cleaned_data.get("password")
        if not identity or not password:
            return self.cleaned_data
        account = User.objects.for_login(identity)
        # An unknown identity is still counted, under what was typed, so guessing accounts is throttled too.
        account_email = account.email if account else identity.lower()
        self.user_cache = authenticate_account(self.request, account_email, password)
        if self.user_cache is None:
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        return self.cleaned_data

    def get_user(self):
        return self.user_cache


class InvitationSignInForm(forms.Form):
    """Following an invitation as a user who already has a password: the account is the invitee's."""

    email = forms.EmailField(
        label=_("Email"), disabled=True, required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "readonly": True}),
    )
    password = forms.CharField(
        label=_("Password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    error_messages = {
        "invalid_login": _("This password is not correct. Try again, or ask your administrator for help."),
    }

    def __init__(self, request, user, *args, **kwargs):
        self.request, self.user = request, user
        super().__init__(*args, initial={"email": user.email}, label_suffix="", **kwargs)

    def clean(self):
        password = self.cleaned_data.get("password")
        if password and authenticate_account(self.request, self.user.email, password) is None:
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        return self.cleaned_data

    def save(self):
        return self.user


class InvitationSetPasswordForm(SetPasswordForm):
    """Following an invitation as a user without a password: choose one (Django's validators apply)."""

    def __init__(self, request, user, *args, **kwargs):
        super().__init__(user, *args, label_suffix="", **kwargs)
        self.fields["new_password1"].label = _("Choose a password")
        self.fields["new_password2"].label = _("Type it again")
        self.fields["new_password1"].widget.attrs["autofocus"] = True


class PasswordResetRequestForm(forms.Form):
    """"Forgot your password?": the account's email address."""

    email = forms.EmailField(
        label=_("Email"), max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True, "autocapitalize": "none",
                                       "spellcheck": "false"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)


class ContinueForm(forms.Form):
    """The invitee is already signed in: one button accepts the invitation (a POST, never a GET, so
    link scanners that prefetch emails cannot spend the token)."""

    def __init__(self, request, user, *args, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def save(self):
        return self.user
