"""Console pages for Entra ID enrollment: the settings page with the values to paste into
Entra, the signing-key sets (import, fetch from the mirror, switch off), the unknown-key alerts and
the links between portal users and Entra users.

Who may enroll is decided here, so only full administrators change anything; the other roles see.
"""
import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import DomainNameValidator
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.utils.translation import gettext_lazy

from accounts.audit import AuditedAdminMixin
from accounts.models import Organisation
from accounts.roles import is_full_admin
from invitations.models import InvalidTransition
from mdmportal.console import ReadOnlyAdminMixin, client_ip

from . import entra_keys
from .models import EntraIdentity, EntraKeyAlert, EntraSettings, JwksSet

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# App ID URIs: https://… (verified domain) or api://… (Entra's default, api://<client id>).
APP_ID_URI = re.compile(r"^(https|api)://\S+$")


def _lines(value):
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class EntraSettingsForm(forms.ModelForm):
    tenant_ids_text = forms.CharField(
        label=gettext_lazy("Tenant ids"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Your tenant's Directory (tenant) id first (Entra admin center > Overview > Tenant "
                               "ID), then one per line any other tenant whose users may enroll. The first is the "
                               "one Entra ID enrollment, offline Autopilot profile files and the connection to "
                               "Microsoft use."),
    )
    tenant_domain = forms.CharField(
        label=gettext_lazy("Tenant's domain"), required=False, max_length=253,
        help_text=gettext_lazy("Your tenant's initial domain, such as contoso.onmicrosoft.com (Entra admin center "
                               "> Domain names): offline Autopilot profile files name the tenant by it."),
    )
    audiences_text = forms.CharField(
        label=gettext_lazy("Accepted audiences"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("One per line: the MDM application's App ID URI (https://… or api://…) and/or "
                               "its Application (client) ID. Version 2 tokens carry the client ID."),
    )
    domains_text = forms.CharField(
        label=gettext_lazy("Verified domains"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("One per line: the tenants' verified domains (Entra admin center > Domain names), "
                               "e.g. contoso.com. Discovery answers Federated (Entra sign-in) to addresses of "
                               "these domains; other users keep the organisation's own sign-in method. Left "
                               "empty, every device that offers Federated gets it, local users included."),
    )
    jwks_mirror_url = forms.URLField(
        label=gettext_lazy("JWKS mirror URL"), required=False, max_length=500, assume_scheme="https",
        help_text=EntraSettings._meta.get_field("jwks_mirror_url").help_text,
    )

    class Meta:
        model = EntraSettings
        fields = ["enabled", "tenant_domain", "jwks_mirror_url", "terms_text"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant_ids_text"].initial = "\n".join(self.instance.tenant_ids)
        self.fields["audiences_text"].initial = "\n".join(self.instance.audiences)
        self.fields["domains_text"].initial = "\n".join(self.instance.domains)
        # The admin renders help texts as HTML: the address (with its "<tenant id>" placeholder) escaped.
        self.fields["jwks_mirror_url"].help_text = format_html(
            _("An https address on your network serving a copy of {}"), entra_keys.keys_url(self.instance.tenant_id))

    def clean_tenant_ids_text(self):
        tenants = _lines(self.cleaned_data["tenant_ids_text"])
        wrong = [t for t in tenants if not GUID.match(t)]
        if wrong:
            raise forms.ValidationError(_("Not a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47): "
                                          "%(values)s") % {"values": ", ".join(wrong)})
        return list(dict.fromkeys(t.lower() for t in tenants))

    def clean_tenant_domain(self):
        domain = self.cleaned_data["tenant_domain"].strip().lower().lstrip("@").rstrip(".")
        if domain:
            try:
                DomainNameValidator()(domain)
            except ValidationError:
                raise forms.ValidationError(_("Not a domain name (such as contoso.onmicrosoft.com)."))
        return domain

    def clean_audiences_text(self):
        audiences = _lines(self.cleaned_data["audiences_text"])
        wrong = [a for a in audiences if not (GUID.match(a) or APP_ID_URI.match(a))]
        if wrong:
            raise forms.ValidationError(_("Not an App ID URI (https://… or api://…) nor a client ID (GUID): "
                                          "%(values)s") % {"values": ", ".join(wrong)})
        return list(dict.fromkeys(a.lower() if GUID.match(a) else a for a in audiences))

    def clean_domains_text(self):
        # Written as Entra lists them; a pasted "@contoso.com" or a trailing dot is the same domain.
        domains = [d.lower().lstrip("@").rstrip(".") for d in _lines(self.cleaned_data["domains_text"])]
        wrong = []
        for domain in domains:
            try:
                DomainNameValidator()(domain)
            except ValidationError:
                wrong.append(domain)
        if wrong:
            raise forms.ValidationError(_("Not a domain name (such as contoso.com): %(values)s")
                                        % {"values": ", ".join(wrong)})
        return list(dict.fromkeys(domains))

    def clean(self):
        cleaned = super().clean()
        tenants, audiences = cleaned.get("tenant_ids_text"), cleaned.get("audiences_text")
        # None: that field already has its own error.
        if cleaned.get("enabled") and tenants is not None and audiences is not None and not (tenants and audiences):
            raise forms.ValidationError(_("Entra ID enrollment needs at least one tenant id and one audience."))
        return cleaned

    def save(self, commit=True):
        self.instance.tenant_ids = self.cleaned_data["tenant_ids_text"]
        self.instance.audiences = self.cleaned_data["audiences_text"]
        self.instance.domains = self.cleaned_data["domains_text"]
        return super().save(commit)


class JwksImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("JWKS file"), required=False,
                           help_text=gettext_lazy("The JSON saved from https://login.microsoftonline.com/"
                                                  "<tenant>/discovery/v2.0/keys"))
    document = forms.CharField(label=gettext_lazy("or paste the JSON"), required=False,
                               widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))

    def clean(self):
        cleaned = super().clean()
        upload, pasted = cleaned.get("file"), (cleaned.get("document") or "").strip()
        if bool(upload) == bool(pasted):
            raise forms.ValidationError(_("Choose a file or paste the JSON (one of the two)."))
        data = upload.read(entra_keys.MAX_JWKS_BYTES + 1) if upload else pasted
        try:
            cleaned["jwks"] = entra_keys.parse_jwks(data)
        except entra_keys.JwksError as exc:
            raise forms.ValidationError(str(exc)) from None
        cleaned["data"] = data
        return cleaned


class FullAdminChangesMixin:
    """Full administrators change; the other roles keep their view permission."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return is_full_admin(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


def discovery_url():
    """The fixed autodiscovery URL on the enrollment host: pasted once into Entra, it survives
    regenerations of the versioned enrollment URL."""
    return Organisation.get().base_url + reverse("enrollment:autodiscovery")


def terms_url():
    return Organisation.get().base_url + reverse("enrollment:terms")


@admin.register(EntraSettings)
class EntraSettingsAdmin(FullAdminChangesMixin, AuditedAdminMixin, admin.ModelAdmin):
    form = EntraSettingsForm
    change_form_template = "admin/enrollment/entrasettings/change_form.html"

    def get_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return ["enabled", "tenant_ids_text", "tenant_domain", "audiences_text", "domains_text", "jwks_mirror_url",
                    "terms_text"]
        return ["enabled", "tenant_list", "tenant_domain", "audience_list", "domain_list", "jwks_mirror_url",
                "terms_text"]

    @admin.display(description=gettext_lazy("Tenant ids"))
    def tenant_list(self, settings_row):
        return ", ".join(settings_row.tenant_ids) or "—"

    @admin.display(description=gettext_lazy("Accepted audiences"))
    def audience_list(self, settings_row):
        return ", ".join(settings_row.audiences) or "—"

    @admin.display(description=gettext_lazy("Verified domains"))
    def domain_list(self, settings_row):
        return ", ".join(settings_row.domains) or "—"

    def changelist_view(self, request, extra_context=None):
        # One settings row: its list is its page.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect("admin:enrollment_entrasettings_change", EntraSettings.get().pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        settings_row = EntraSettings.get()
        extra_context = {
            **(extra_context or {}),
            "discovery_url": discovery_url(),
            "terms_url": terms_url(),
            "is_ready": settings_row.is_ready,
            "jwks_sets": JwksSet.objects.select_related("imported_by")[:20],
            "open_alerts": EntraKeyAlert.objects.open()[:20],
            "can_manage_keys": self.has_change_permission(request),
        }
        return super().change_view(request, str(settings_row.pk), form_url, extra_context)

    def response_change(self, request, obj):
        # One settings row, so Save stays on its page; it still says that the settings were saved.
        self.message_user(request, _("The Entra ID settings were saved."), messages.SUCCESS)
        return redirect("admin:enrollment_entrasettings_change", obj.pk)

    def get_urls(self):
        return [
            path("keys/import/", self.admin_site.admin_view(self.import_view), name="enrollment_entrasettings_import"),
            path("keys/fetch/", self.admin_site.admin_view(self.fetch_view), name="enrollment_entrasettings_fetch"),
            path("keys/<int:pk>/switch/", self.admin_site.admin_view(self.switch_view),
                 name="enrollment_entrasettings_switch"),
        ] + super().get_urls()

    def _require_change(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied

    def import_view(self, request):
        """Upload or paste a JWKS document; a bad one is explained and nothing is stored."""
        self._require_change(request)
        form = JwksImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            jwks, created = entra_keys.import_jwks(form.cleaned_data["data"], actor=request.user, ip=client_ip(request))
            self._report_import(request, jwks, created)
            return redirect("admin:enrollment_entrasettings_change", EntraSettings.get().pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import Entra ID signing keys"),
            "form": form,
            "keys_url": entra_keys.keys_url(EntraSettings.get().tenant_id),
        }
        return TemplateResponse(request, "admin/enrollment/entrasettings/import_keys.html", context)

    def fetch_view(self, request):
        self._require_change(request)
        if request.method != "POST":
            return redirect("admin:enrollment_entrasettings_change", EntraSettings.get().pk)
        url = EntraSettings.get().jwks_mirror_url
        try:
            jwks, created = entra_keys.fetch_mirror(url, actor=request.user, ip=client_ip(request))
        except entra_keys.JwksError as exc:
            self.message_user(request, _("Nothing was imported: %(error)s") % {"error": exc}, messages.ERROR)
        else:
            self._report_import(request, jwks, created)
        return redirect("admin:enrollment_entrasettings_change", EntraSettings.get().pk)

    def switch_view(self, request, pk):
        """Switch a key set off (its keys are no longer trusted) or back on."""
        self._require_change(request)
        jwks = get_object_or_404(JwksSet, pk=pk)
        if request.method == "POST":
            try:
                jwks.deactivate() if jwks.active else jwks.activate()
            except InvalidTransition:
                pass
            else:
                self.audit_change(request, "activated" if jwks.active else "deactivated", jwks)
                self.message_user(request, (_("Keys of %(set)s are trusted again.") if jwks.active
                                            else _("Keys of %(set)s are no longer trusted.")) % {"set": jwks})
        return redirect("admin:enrollment_entrasettings_change", EntraSettings.get().pk)

    def _report_import(self, request, jwks, created):
        if created:
            self.message_user(request, _("Imported %(count)d signing keys: %(kids)s.") % {
                "count": len(jwks.key_ids), "kids": ", ".join(jwks.key_ids)}, messages.SUCCESS)
        else:
            self.message_user(request, _("These keys are already imported (%(set)s): nothing changed.") % {"set": jwks},
                              messages.INFO)


@admin.register(JwksSet)
class JwksSetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The imported key sets, for the record; they are imported and switched on the settings page."""

    list_display = ["imported_at", "source", "source_url", "kids", "active", "imported_by"]
    list_filter = ["active", "source"]
    fields = readonly_fields = ["imported_at", "imported_by", "source", "source_url", "kids", "active", "sha256",
                                "document"]

    @admin.display(description=gettext_lazy("Key ids"))
    def kids(self, jwks):
        return ", ".join(jwks.key_ids)


@admin.register(EntraKeyAlert)
class EntraKeyAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tokens signed with keys we do not have: import Microsoft's current keys, which resolves them."""

    list_display = ["kid", "first_seen_at", "last_seen_at", "occurrences", "resolved_at", "resolved_by"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter)]
    fields = readonly_fields = ["kid", "first_seen_at", "last_seen_at", "occurrences", "resolved_at", "resolved_by"]
    actions = ["resolve"]

    def has_resolve_permission(self, request):
        return is_full_admin(request.user)

    @admin.action(description=gettext_lazy("Mark as resolved"), permissions=["resolve"])
    def resolve(self, request, queryset):
        done = 0
        for alert in queryset.open():
            alert.resolve(request.user)
            done += 1
        self.message_user(request, ngettext("%(count)d alert resolved.", "%(count)d alerts resolved.", done) % {"count": done})


@admin.register(EntraIdentity)
class EntraIdentityAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Which portal user each Entra user is; made by their first Entra enrollment."""

    list_display = ["user", "tenant_id", "object_id", "created_at"]
    search_fields = ["user__email", "object_id", "tenant_id"]
    list_select_related = ["user"]
    fields = readonly_fields = ["user", "tenant_id", "object_id", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Unlinking lets the next enrollment link by email again: full administrators only.
        return is_full_admin(request.user) and super().has_delete_permission(request, obj)
