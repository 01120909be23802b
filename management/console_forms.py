"""The parameters of each device action, checked the same way for the console and the API. A form
is built for the devices it acts on; `cleaned_data` is what management.actions.run() takes."""
from django import forms

from . import actions, commands
from .models import DeviceCommand


class ActionForm(forms.Form):
    """No parameters: confirming is enough (sync, reboot)."""

    def __init__(self, *args, devices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.devices = list(devices)

    def _refusal(self, check, *args, field=None):
        try:
            check(*args)
        except actions.ActionRefused as refusal:
            self.add_error(field, str(refusal))


class WipeForm(ActionForm):
    mode = forms.ChoiceField(choices=list(actions.WIPE_MODES.items()), initial="doWipe", widget=forms.RadioSelect)
    confirmation = forms.CharField(max_length=255, required=False, strip=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        expected = actions.wipe_confirmation(self.devices) if self.devices else ""
        what = "the device name" if len(self.devices) == 1 else "the number of selected devices"
        self.fields["confirmation"].label = f"Type {what} ({expected}) to confirm"

    def clean(self):
        data = super().clean()
        if "mode" in data:
            self._refusal(actions.check_wipe, self.devices, data.get("confirmation"), data["mode"], field=None)
        return data


class RetireForm(ActionForm):
    immediately = forms.BooleanField(
        required=False, label="Retire now without waiting for the device",
        help_text="Revokes the certificate at once and sends nothing: for a lost device, or an Entra-joined "
                  "or \"work account\" device, which ignores the unenroll command (wipe those instead).")


class RenameForm(ActionForm):
    name = forms.CharField(max_length=64, label="New computer name",
                           help_text="Up to 15 letters, digits and hyphens; %RAND:n% and %SERIAL% are expanded "
                                     "by Windows. Takes effect after a restart.")
    reboot = forms.BooleanField(required=False, label="Restart the device afterwards")

    def clean_name(self):
        name = self.cleaned_data["name"]
        try:
            actions.check_computer_name(name)
        except actions.ActionRefused as refusal:
            raise forms.ValidationError(str(refusal)) from None
        return name


class CustomCommandForm(ActionForm):
    verb = forms.ChoiceField(choices=DeviceCommand.Verb.choices)
    target = forms.CharField(label="LocURI", max_length=commands.MAX_TARGET, strip=False,
                             help_text="./Device/Vendor/MSFT/… or ./Vendor/MSFT/… (device), ./User/… (user)")
    format = forms.ChoiceField(choices=[("", "—")] + [(f, f) for f in commands.FORMATS], required=False)
    type = forms.CharField(max_length=255, required=False, help_text="Meta/Type, e.g. text/plain (optional)")
    data = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, strip=False,
                           max_length=commands.MAX_DATA)

    def clean(self):
        data = super().clean()
        if {"verb", "target"} <= data.keys():
            try:
                commands.validate(data["verb"], data["target"], data.get("format", ""), data.get("data", ""),
                                  data.get("type", ""))
            except commands.CommandError as error:
                self.add_error(None, str(error))
        return data


FORMS = {"sync": ActionForm, "reboot": ActionForm, "wipe": WipeForm, "retire": RetireForm, "rename": RenameForm,
         "custom": CustomCommandForm, "release": ActionForm}
