"""The getting-started wizard: organisation name → enrollment host name → first users → summary.

The answers of the first two steps wait in the session; the last step writes everything (the
organisation, the users, their invitations) in one transaction, so a bad step never leaves half a
set-up behind. Full administrators only.
"""
from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import AuditEvent, Organisation
from accounts.roles import is_full_admin
from mdmportal.console import client_ip

from . import user_import
from .console_forms import EnrollmentHostForm, FirstUsersForm, OrganisationNameForm

SESSION_KEY = "getting_started"
STEPS = [
    ("admin:getting_started", gettext_lazy("Organisation")),
    ("admin:getting_started_enrollment", gettext_lazy("Enrollment host name")),
    ("admin:getting_started_users", gettext_lazy("First users")),
    ("admin:getting_started_done", gettext_lazy("Summary")),
]


def full_admin_only(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_full_admin(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)
    return wrapped


@full_admin_only
def organisation_step(request):
    state = request.session.get(SESSION_KEY, {})
    form = OrganisationNameForm(request.POST or None, initial={"name": state.get("name") or Organisation.get().name})
    if request.method == "POST" and form.is_valid():
        request.session[SESSION_KEY] = {**state, "name": form.cleaned_data["name"]}
        return redirect("admin:getting_started_enrollment")
    return _render_step(request, 0, form, _("What is your organisation called?"))


@full_admin_only
def enrollment_step(request):
    state = request.session.get(SESSION_KEY, {})
    if "name" not in state:
        return redirect("admin:getting_started")
    organisation = Organisation.get()
    host = state.get("host") or organisation.enrollment_base_url
    form = EnrollmentHostForm(request.POST or None, initial={
        "host": host, "auth_policy": state.get("auth_policy") or organisation.auth_policy})
    if request.method == "POST" and form.is_valid():
        request.session[SESSION_KEY] = {**state, "host": form.cleaned_data["host"],
                                        "auth_policy": form.cleaned_data["auth_policy"] or organisation.auth_policy}
        return redirect("admin:getting_started_users")
    return _render_step(request, 1, form, _("Which host name do devices enroll with?"))


@full_admin_only
def users_step(request):
    state = request.session.get(SESSION_KEY, {})
    if "name" not in state or "host" not in state:
        return redirect("admin:getting_started")
    form = FirstUsersForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        summary = _finish(request, state, form)
        if summary is not None:
            request.session[SESSION_KEY] = {"summary": summary}
            return redirect("admin:getting_started_done")
    return _render_step(request, 2, form, _("Who are your first users?"))


@full_admin_only
def summary(request):
    done = request.session.get(SESSION_KEY, {}).get("summary")
    if done is None:
        return redirect("admin:getting_started")
    context = {
        **admin.site.each_context(request),
        "title": _("Your organisation is ready"),
        "steps": STEPS,
        "step": 3,
        "organisation": Organisation.get(),
        "summary": done,
    }
    return TemplateResponse(request, "admin/getting_started/summary.html", context)


def _finish(request, state, form):
    """Write the organisation and the first users in one go. Returns what the summary shows, or None
    when the users could not be added (the form then carries the reasons)."""
    ip = client_ip(request)
    rows, send = form.cleaned_data["users"], form.cleaned_data["send_invitations"]
    with transaction.atomic():
        organisation = Organisation.objects.select_for_update().get(pk=Organisation.get().pk)
        organisation.name, organisation.enrollment_base_url = state["name"], state["host"]
        organisation.auth_policy = state.get("auth_policy") or organisation.auth_policy
        organisation.setup_completed_at = organisation.setup_completed_at or timezone.now()
        organisation.save(update_fields=["name", "enrollment_base_url", "auth_policy", "setup_completed_at"])
        AuditEvent.record(request.user, "organisation.set_up", organisation, ip=ip,
                          detail={"name": state["name"], "enrollment_base_url": state["host"],
                                  "auth_policy": organisation.auth_policy})
        if not rows:
            return {"users": [], "invited": False}
        report = user_import.import_users(rows, actor=request.user, ip=ip, send_invitations=send,
                                          source="getting-started wizard")
        if not report.created:
            # Another administrator added one of these users since the form was checked.
            transaction.set_rollback(True)
            form.add_error("users", [_("Line %(line)d (%(email)s): %(errors)s")
                                     % {"line": row.line, "email": row.email, "errors": "; ".join(row.errors)}
                                     for row in report.failed_rows])
            return None
    return {"users": [row.values["email"] for row in report.rows], "invited": send}


def _render_step(request, step, form, question):
    context = {
        **admin.site.each_context(request),
        "title": _("Getting started"),
        "question": question,
        "steps": STEPS,
        "step": step,
        "form": form,
        "previous": STEPS[step - 1][0] if step else None,
    }
    return TemplateResponse(request, "admin/getting_started/step.html", context)
