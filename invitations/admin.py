"""The console pages for users, invitations, the organisation and the audit log.

Each role sees only what it may do: the permission methods below (not the templates) decide, so a
hidden button is also a refused request.
"""
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from knox.models import AuthToken

from accounts.audit import AuditedAdminMixin
from accounts.models import AuditEvent, Organisation, RegistrationSettings, User
from accounts.roles import ROLES, is_full_admin
from mdmportal.console import ReadOnlyAdminMixin, WholeChangelistMixin, client_ip

from . import api_tokens, console_invitations, exports, password_reset, sending, user_import, user_summary
from .console_forms import (
    AdministratorChangeForm, CsvImportForm, OrganisationForm, UserAddForm, UserChangeForm,
)
from .models import Invitation, InvitationEmail, InvalidTransition, UrlRotation

# Roles are fixed and re-synced after every migrate; they are given on the user's form, not edited.
admin.site.unregister(Group)
# knox's own page lists digests and puts a new token in a message (stored in the session): ours below.
admin.site.unregister(AuthToken)

EXPIRABLE = [Invitation.Status.QUEUED, Invitation.Status.SENT, Invitation.Status.OPENED, Invitation.Status.FAILED]
STATUS_LABELS = {**dict(Invitation.Status.choices), "expired": gettext_lazy("expired")}
STATUS_BADGES = {"failed": "danger", "completed": "ok", "accepted": "ok", "revoked": "muted", "expired": "muted"}


class UserInvitationFilter(admin.SimpleListFilter):
    title = gettext_lazy("invitation")
    parameter_name = "invitation"

    def lookups(self, request, model_admin):
        return [("none", _("never invited")), ("pending", _("pending")), ("failed", _("email failed")),
                ("completed", _("enrollment completed"))]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(invitations__isnull=True)
        if self.value() == "pending":
            return queryset.filter(pk__in=Invitation.objects.pending().values("user"))
        if self.value() in ("failed", "completed"):
            return queryset.filter(pk__in=Invitation.objects.filter(status=self.value()).values("user"))
        return queryset


class RoleFilter(admin.SimpleListFilter):
    title = gettext_lazy("role")
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return [(role, _(role)) for role in ROLES]

    def queryset(self, request, queryset):
        if self.value() in ROLES:
            return queryset.filter(groups__name=self.value())
        return queryset


@admin.register(User)
class UserAdmin(WholeChangelistMixin, AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["email", "display_name", "mdm_username", "language", "device_limit", "invitation_status",
                    "is_staff"]
    list_filter = [UserInvitationFilter, "language", "is_staff", RoleFilter, "is_active"]
    search_fields = ["email", "display_name", "mdm_username"]
    actions = ["send_invitations", "export_csv"]
    change_list_template = "admin/accounts/user/change_list.html"
    change_form_template = "admin/accounts/user/change_form.html"

    def get_queryset(self, request):
        latest_first = Invitation.objects.order_by("-created_at")
        return super().get_queryset(request).prefetch_related(Prefetch("invitations", queryset=latest_first))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = ["email", "mdm_username", "display_name", "language", "device_limit", "user_groups"]
            if self.has_send_invitation_permission(request):
                fields.append("send_invitation")
            return [(None, {"fields": fields})]
        return [
            (None, {"fields": ["email", "mdm_username", "display_name", "language", "device_limit", "is_active"]}),
            # A form field when editable; read-only pages show the names (the reverse relation has no widget).
            (_("Registration"), {"fields": ["user_groups" if self.has_change_permission(request, obj)
                                            else "user_group_list"]}),
            (_("Console access"), {"fields": ["is_staff", "role"]}),
            (_("History"), {"fields": ["date_joined", "last_login"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if is_full_admin(request.user):
            return ["date_joined", "last_login"]
        # Only full administrators grant console access and roles.
        return ["is_staff", "role", "date_joined", "last_login"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = UserAddForm
        elif is_full_admin(request.user):
            kwargs["form"] = type("AdministratorChangeForm", (AdministratorChangeForm,), {"acting_user": request.user})
        else:
            kwargs["form"] = UserChangeForm
        return super().get_form(request, obj, change, **kwargs)

    def has_change_permission(self, request, obj=None):
        # Administrators' accounts are full administrators' business (or an enrollment administrator
        # could take over a full administrator's account by changing its email).
        if obj is not None and obj.is_staff and not is_full_admin(request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_staff and not is_full_admin(request.user):
            return False
        return super().has_delete_permission(request, obj)

    def has_send_invitation_permission(self, request):
        return request.user.has_perm("accounts.send_invitation")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and form.cleaned_data.get("send_invitation") and self.has_send_invitation_permission(request):
            sending.invite([obj], actor=request.user, ip=client_ip(request))
            self.message_user(request, _("Invitation queued for %(email)s.") % {"email": obj.email})

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if isinstance(form, AdministratorChangeForm):
            form.save_role()

    @admin.display(description=gettext_lazy("invitation"))
    def invitation_status(self, user):
        latest = next(iter(user.invitations.all()), None)
        return STATUS_LABELS[latest.display_status] if latest else "—"

    @admin.display(description=gettext_lazy("user groups"))
    def user_group_list(self, user):
        return ", ".join(group.name for group in user.user_groups.all()) or "—"

    @admin.display(description=gettext_lazy("role"))
    def role(self, user):
        return ", ".join(_(name) for name in user.groups.filter(name__in=ROLES).values_list("name", flat=True)) or "—"

    @admin.action(description=gettext_lazy("Send invitation"), permissions=["send_invitation"])
    def send_invitations(self, request, queryset):
        """First a page with what would happen (counts, who is already enrolled), then, confirmed, the
        invitations. The selection stays a query (INSERT … SELECT in invite()): "Select all" on 10,000
        users loads none; the confirmation posts the action again with the same selection."""
        include_enrolled = request.POST.get("include_enrolled") == "yes"
        if request.POST.get("post") != "yes":
            groups = console_invitations.invitation_plan(queryset, include_enrolled=include_enrolled)
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Send invitations?"),
                "groups": groups,
                "sendable": sum(group.count for group in groups if group.key in ("new", "resend")),
                "enrolled": next(group for group in groups if group.key == "enrolled").count,
                "include_enrolled": include_enrolled,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across") == "1",
                "action_index": request.POST.get("index", "0"),
            }
            return TemplateResponse(request, "admin/accounts/user/invite_confirm.html", context)
        to_invite, counts = console_invitations.invitation_targets(queryset, include_enrolled=include_enrolled)
        invited = len(sending.invite_ids(to_invite, actor=request.user, ip=client_ip(request)))
        if invited:
            self.message_user(request, ngettext("Invitation queued for %(count)d user.",
                                                "Invitations queued for %(count)d users.", invited)
                              % {"count": invited}, messages.SUCCESS)
        if counts["enrolled"]:
            self.message_user(request, ngettext("%(count)d already enrolled user was not invited.",
                                                "%(count)d already enrolled users were not invited.",
                                                counts["enrolled"]) % {"count": counts["enrolled"]}, messages.WARNING)
        if counts["inactive"]:
            self.message_user(request, ngettext("%(count)d inactive user was not invited.",
                                                "%(count)d inactive users were not invited.", counts["inactive"])
                              % {"count": counts["inactive"]}, messages.WARNING)

    @admin.action(description=gettext_lazy("Export to CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        # The importer's columns (user_import.COLUMNS), cells neutralised against spreadsheet formulas.
        return exports.export_users(queryset, actor=request.user, ip=client_ip(request), via="console",
                                    detail={"filter": exports.filter_of(request.GET), "selection": True})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if user is not None:
            extra_context.update({
                "summary": user_summary.summary(user, request),
                "can_reset_password": self.has_change_permission(request, user) and user.is_active,
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def password_reset_view(self, request, pk):
        """Send the user a password reset email: a confirmation, then POST (audited as the administrator's)."""
        user = get_object_or_404(User, pk=pk)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        change_url = reverse("admin:accounts_user_change", args=[user.pk])
        if request.method == "POST" and user.is_active:
            password_reset.send_reset(user, actor=request.user, ip=client_ip(request))
            self.message_user(request, _("A password reset email is on its way to %(email)s.") % {"email": user.email},
                              messages.SUCCESS)
            return redirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Send a password reset?"),
            "original": user,
            "change_url": change_url,
            "hours": max(1, settings.PASSWORD_RESET_TIMEOUT // 3600),
        }
        return TemplateResponse(request, "admin/accounts/user/password_reset_confirm.html", context,
                                status=409 if request.method == "POST" else 200)

    def get_urls(self):
        return [
            path("<int:pk>/password-reset/", self.admin_site.admin_view(self.password_reset_view),
                 name="accounts_user_password_reset"),
            path("import/", self.admin_site.admin_view(self.import_view), name="accounts_user_import"),
            path("export/", self.admin_site.admin_view(self.export_view), name="accounts_user_export"),
        ] + super().get_urls()

    def export_view(self, request):
        """The list as filtered, searched and sorted on screen (its query string), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return export_changelist(self, request, exports.export_users)

    def import_view(self, request):
        """Bulk add from a CSV upload, all rows or none, with a report row by row."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        can_send = self.has_send_invitation_permission(request)
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if not can_send:
            del form.fields["send_invitations"]
        report = None
        if request.method == "POST" and form.is_valid():
            send = can_send and form.cleaned_data["send_invitations"]
            report = user_import.import_users(form.cleaned_data["file"], actor=request.user,
                                              ip=client_ip(request), send_invitations=send)
            if report.created:
                self.message_user(request, ngettext("%(count)d user added.", "%(count)d users added.",
                                                    len(report.rows)) % {"count": len(report.rows)})
            else:
                self.message_user(request, _("Nothing was imported: correct the rows marked below and upload "
                                             "the file again."), messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import users from CSV"),
            "form": form,
            "report": report,
            "columns": user_import.COLUMNS,
        }
        return TemplateResponse(request, "admin/accounts/user/import.html", context)


class InvitationStatusFilter(admin.SimpleListFilter):
    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", _("pending (the link still works)")), *STATUS_LABELS.items()]

    def queryset(self, request, queryset):
        value, now = self.value(), timezone.now()
        if value == "pending":
            return queryset.pending()
        if value == "expired":
            return queryset.filter(status__in=EXPIRABLE, expires_at__lte=now)
        if value in EXPIRABLE:
            return queryset.filter(status=value, expires_at__gt=now)
        if value in STATUS_LABELS:
            return queryset.filter(status=value)
        return queryset


class InvitationEmailInline(admin.TabularInline):
    model = InvitationEmail
    fields = readonly_fields = ["reason", "status", "attempts", "error", "queued_at", "sent_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Invitations are made by sending them (Users, wizard, import); here they are followed up."""

    # What fits a laptop beside the filters: who, where it stands, when it was sent and completed, and why it
    # failed (the column needed when something fails). Created and opened dates are on the invitation's page.
    list_display = ["user", "status_badge", "sent_at", "completed_at", "failure"]
    list_filter = [InvitationStatusFilter]
    list_select_related = ["user"]
    search_fields = ["user__email", "user__display_name"]
    date_hierarchy = "created_at"
    actions = ["resend", "revoke"]
    inlines = [InvitationEmailInline]
    change_form_template = "admin/invitations/invitation/change_form.html"
    fields = readonly_fields = ["user", "status_display", "failure_reason", "created_by", "created_at",
                                "expires_at", "sent_at", "opened_at", "accepted_at", "completed_at", "revoked_at"]

    def has_send_invitation_permission(self, request):
        return request.user.has_perm("accounts.send_invitation")

    def has_revoke_permission(self, request):
        return request.user.has_perm("invitations.change_invitation")

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, invitation):
        return STATUS_LABELS[invitation.display_status]

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, invitation):
        status = invitation.display_status
        return format_html('<span class="badge badge-{}">{}</span>', STATUS_BADGES.get(status, "progress"),
                           STATUS_LABELS[status])

    @admin.display(description=gettext_lazy("failure reason"))
    def failure(self, invitation):
        if not invitation.failure_reason:
            return "—"
        return format_html('<span title="{}">{}</span>', invitation.failure_reason,
                           Truncator(invitation.failure_reason).chars(140))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invitation = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if invitation is not None:
            extra_context.update({
                "can_resend": self.has_send_invitation_permission(request),
                "can_revoke": self.has_revoke_permission(request),
                "resend_refusal": console_invitations.resend_refusal(invitation),
                "revoke_refusal": console_invitations.revoke_refusal(invitation),
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("<int:pk>/resend/", self.admin_site.admin_view(self.resend_view), name="invitations_invitation_resend"),
            path("<int:pk>/revoke/", self.admin_site.admin_view(self.revoke_view), name="invitations_invitation_revoke"),
        ] + super().get_urls()

    def resend_view(self, request, pk):
        """Resend one invitation: a confirmation (or why it cannot be resent and what to do), then POST."""
        if not self.has_send_invitation_permission(request):
            raise PermissionDenied
        return self._transition_view(request, pk, "resend")

    def revoke_view(self, request, pk):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        return self._transition_view(request, pk, "revoke")

    def _transition_view(self, request, pk, name):
        invitation = get_object_or_404(Invitation.objects.select_related("user"), pk=pk)
        refusal = (console_invitations.resend_refusal if name == "resend" else console_invitations.revoke_refusal)(
            invitation)
        change_url = reverse("admin:invitations_invitation_change", args=[invitation.pk])
        if request.method == "POST" and refusal is None:
            transition = sending.resend if name == "resend" else sending.revoke
            try:
                transition(invitation, actor=request.user, ip=client_ip(request))
            except InvalidTransition:
                # Changed since the page was shown (revoked, accepted meanwhile): show why.
                invitation.refresh_from_db()
            else:
                self.message_user(request, (_("Invitation resent to %(email)s.") if name == "resend"
                                            else _("Invitation for %(email)s revoked.")) % {"email": invitation.user.email},
                                  messages.SUCCESS)
                return redirect(change_url)
            refusal = (console_invitations.resend_refusal if name == "resend"
                       else console_invitations.revoke_refusal)(invitation)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Resend this invitation?") if name == "resend" else _("Revoke this invitation?"),
            "transition": name,
            "invitations": [invitation],
            "original": invitation,
            "refusals": [(invitation, refusal)] if refusal else [],
            "change_url": change_url,
            "ttl_days": settings.INVITATION_TTL_DAYS,
        }
        return TemplateResponse(request, "admin/invitations/invitation/confirm.html", context,
                                status=409 if refusal and request.method == "POST" else 200)

    @admin.action(description=gettext_lazy("Resend invitation"), permissions=["send_invitation"])
    def resend(self, request, queryset):
        self._apply(request, queryset, sending.resend, console_invitations.resend_refusal,
                    lambda n: ngettext("Invitation resent to %(count)d user.", "Invitations resent to %(count)d users.",
                                       n))

    @admin.action(description=gettext_lazy("Revoke invitation"), permissions=["revoke"])
    def revoke(self, request, queryset):
        """Asks first (the list of invitations and which cannot be revoked), then revokes."""
        if request.POST.get("post") != "yes":
            invitations = list(queryset.select_related("user")[:console_invitations.LISTED])
            count = queryset.count()
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Revoke these invitations?"),
                "transition": "revoke",
                "bulk": True,
                "invitations": invitations,
                "more": count - len(invitations),
                "count": count,
                "refusals": [(i, r) for i, r in ((i, console_invitations.revoke_refusal(i)) for i in invitations) if r],
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across") == "1",
                "action_index": request.POST.get("index", "0"),
            }
            return TemplateResponse(request, "admin/invitations/invitation/confirm.html", context)
        self._apply(request, queryset, sending.revoke, console_invitations.revoke_refusal,
                    lambda n: ngettext("%(count)d invitation revoked.", "%(count)d invitations revoked.", n))

    def _apply(self, request, queryset, transition, refusal_of, done_message):
        done, refused = 0, []
        for invitation in queryset.select_related("user"):
            refusal = refusal_of(invitation)
            if refusal is None:
                try:
                    transition(invitation, actor=request.user, ip=client_ip(request))
                    done += 1
                    continue
                except InvalidTransition:
                    invitation.refresh_from_db()
                    refusal = refusal_of(invitation)
            refused.append((invitation, refusal))
        if done:
            self.message_user(request, done_message(done) % {"count": done}, messages.SUCCESS)
        for invitation, refusal in refused[:console_invitations.LISTED]:
            text = f"{invitation.user.email}: {refusal.reason} {refusal.next_step}" if refusal else invitation.user.email
            self.message_user(request, text, messages.WARNING)
        if len(refused) > console_invitations.LISTED:
            more = len(refused) - console_invitations.LISTED
            self.message_user(request, ngettext("%(count)d more invitation was left as it was.",
                                                "%(count)d more invitations were left as they were.", more)
                              % {"count": more}, messages.WARNING)


@admin.register(Organisation)
class OrganisationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = OrganisationForm
    fieldsets = [
        (None, {"fields": ["name", "enrollment_base_url", "current_enrollment_url", "enrollment_url_version",
                           "setup_completed_at"]}),
        (gettext_lazy("Enrollment sign-in"), {"fields": ["auth_policy"]}),
        (gettext_lazy("Registration authentication (default)"), {
            "fields": RegistrationSettings.REGISTRATION_FIELDS,
            "description": gettext_lazy("For users in no user group. “PIN and password” always uses the "
                                        "sign-in page, since Windows' own box takes only one secret."),
        }),
    ]
    readonly_fields = ["current_enrollment_url", "enrollment_url_version", "setup_completed_at"]
    change_form_template = "admin/accounts/organisation/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_regenerate_permission(self, request):
        return request.user.has_perm("accounts.regenerate_enrollment_url")

    @admin.display(description=gettext_lazy("Current enrollment URL"))
    def current_enrollment_url(self, organisation):
        return organisation.enrollment_url

    def changelist_view(self, request, extra_context=None):
        # One organisation: its list is its page.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect("admin:accounts_organisation_change", Organisation.get().pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_regenerate": self.has_regenerate_permission(request),
            "rotations": UrlRotation.with_email_counts(UrlRotation.objects.select_related("started_by")[:5]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("regenerate/", self.admin_site.admin_view(self.regenerate_view),
                 name="accounts_organisation_regenerate"),
            path("rotations/", self.admin_site.admin_view(self.rotations_view),
                 name="accounts_organisation_rotations"),
        ] + super().get_urls()

    def regenerate_view(self, request):
        """Confirm, then rotate the enrollment URL; the re-issue runs in Celery (see rotations)."""
        if not self.has_regenerate_permission(request):
            raise PermissionDenied
        organisation = Organisation.get()
        if request.method == "POST":
            rotation = sending.regenerate_enrollment_url(organisation, actor=request.user, ip=client_ip(request))
            self.message_user(request, _("New enrollment URL (version %(version)d). Users with a pending "
                                         "invitation are being sent it.") % {"version": rotation.version})
            return redirect("admin:accounts_organisation_rotations")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Regenerate the enrollment URL?"),
            "organisation": organisation,
            "pending_count": Invitation.objects.pending().count(),
        }
        return TemplateResponse(request, "admin/accounts/organisation/regenerate_confirm.html", context)

    def rotations_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        rotations = UrlRotation.with_email_counts(UrlRotation.objects.select_related("started_by")[:20])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Enrollment URL regenerations"),
            "organisation": Organisation.get(),
            "rotations": rotations,
            "refresh": any(rotation.state != "finished" for rotation in rotations),
        }
        return TemplateResponse(request, "admin/accounts/organisation/rotations.html", context)


@admin.register(AuditEvent)
class AuditEventAdmin(WholeChangelistMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone, superusers included: the log is only ever appended to by the code.
    Whoever may read it may export it (the list as filtered, as CSV); the export is itself audited."""

    list_display = ["created_at", "actor_label", "action", "target_type", "target_label", "ip", "count"]
    list_filter = ["action", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_label", "target_label", "target_id"]
    date_hierarchy = "created_at"
    fields = readonly_fields = ["created_at", "actor", "actor_label", "action", "target_type", "target_id",
                                "target_label", "ip", "count", "last_at", "detail"]
    change_list_template = "admin/accounts/auditevent/change_list.html"

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="accounts_auditevent_export"),
        ] + super().get_urls()

    def export_view(self, request):
        """The log as filtered, searched and sorted on screen (its query string), streamed as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return export_changelist(self, request, exports.export_audit)


def export_changelist(model_admin, request, export):
    """`export` (exports.export_users or export_audit) of `model_admin`'s list as the request filters
    it; a filter the list does not know sends back to the list with its error, as the list does."""
    try:
        queryset = model_admin.changelist_queryset(request)
    except IncorrectLookupParameters:
        opts = model_admin.model._meta
        return HttpResponseRedirect(f"{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}"
                                    f"?{ERROR_FLAG}=1")
    return export(queryset, actor=request.user, ip=client_ip(request), via="console",
                  detail={"filter": exports.filter_of(request.GET)})


class ApiTokenAddForm(forms.ModelForm):
    user = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True, is_staff=True).order_by("email"),
        label=gettext_lazy("Administrator"),
        help_text=gettext_lazy("The token acts with this administrator's role. It replaces the administrator's "
                               "current token, which stops working at once."))

    class Meta:
        model = AuthToken
        fields = ["user"]


@admin.register(AuthToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: made here (shown once, on the page that answers the form), listed and revoked. Only
    their hash is stored (invitations/api_tokens.py). Full administrators only (knox's permissions)."""

    form = ApiTokenAddForm
    list_display = ["user", "created", "expires"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    ordering = ["-created"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("expires"), ordering="expiry")
    def expires(self, token):
        """knox's own column is headed by its field's untranslated name ("Expiry")."""
        return token.expiry

    def has_delete_permission(self, request, obj=None):
        return False  # through the audited "revoke" action below

    def has_revoke_permission(self, request):
        return request.user.has_perm("knox.delete_authtoken")

    @admin.action(description=gettext_lazy("Revoke the selected API tokens"), permissions=["revoke"])
    def revoke(self, request, queryset):
        count = sum(api_tokens.revoke(user, actor=request.user, via="console", ip=client_ip(request))
                    for user in User.objects.filter(auth_token_set__in=queryset).distinct())
        self.message_user(request, ngettext("%(count)d API token revoked.", "%(count)d API tokens revoked.",
                                            count) % {"count": count})

    def save_model(self, request, obj, form, change):
        instance, token = api_tokens.issue(obj.user, actor=request.user, via="console", ip=client_ip(request))
        obj.digest, obj.token_key, obj.created, obj.expiry = (instance.digest, instance.token_key, instance.created,
                                                              instance.expiry)
        request.new_api_token = token

    def log_addition(self, request, obj, message):
        return None  # api_tokens.issue wrote the audit event (and the token's str() is its digest)

    def response_add(self, request, obj, post_url_continue=None):
        """The token, this once: on the page that answers the form, not in a message (stored in the
        session, i.e. the database) nor in a redirect."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("New API token"),
            "token_user": obj.user,
            "token": request.new_api_token,
        }
        response = TemplateResponse(request, "admin/invitations/api_token_created.html", context)
        add_never_cache_headers(response)
        return response
