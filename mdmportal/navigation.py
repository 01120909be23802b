"""The console's navigation, by task rather than by Django app: the sections of the sidebar and of the
dashboard's list, the plain name of each page, and the System section that only full administrators
see.

Entries name their model by class name (`object_name`), not by app label, so that a model moving from
one app to another keeps its place. A registered model this table does not name still appears, in a
last "Other" section, so that nothing registered becomes unreachable from the menu.
"""
from dataclasses import dataclass, field

from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from accounts.roles import is_full_admin


@dataclass(frozen=True)
class Link:
    """An entry that is not a model's list: a page (URL name) shown to whoever may view `model`'s rows."""

    name: object
    url_name: str
    model: str  # class name of the model whose view permission the entry needs
    fragment: str = ""
    key: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    name: object
    entries: list = field(default_factory=list)  # model class names (str) or Link
    full_admins_only: bool = False


DASHBOARD = "dashboard"
SYSTEM = "system"

SECTIONS = [
    Section(DASHBOARD, _("Dashboard")),
    Section("people", _("Users & invitations"), ["User", "UserGroup", "Invitation"]),
    Section("devices", _("Devices"), ["Device", "DeviceCommand"]),
    Section("enrollment", _("Enrollment"), [
        # Both on the organisation's page; the sign-in method is its second fieldset (Django names the
        # heading of fieldset N "fieldset-0-N-heading").
        Link(_("Enrollment URL"), "admin:accounts_organisation_changelist", "Organisation", key="enrollmenturl"),
        Link(_("Sign-in method"), "admin:accounts_organisation_changelist", "Organisation",
             fragment="fieldset-0-1-heading", key="signinmethod"),
        "RegistrationPin", "PinEnrollment", "EntraSettings", "JwksSet", "EntraKeyAlert", "EntraIdentity",
    ]),
    Section("autopilot", _("Windows Autopilot"), [
        "AutopilotDevice", "DeviceImport", "Profile", "AutopilotEnrollment", "AppInstall", "GraphConnector",
    ]),
    Section("configuration", _("Configuration"), ["ConfigurationGroup"]),
    Section("audit", _("Audit"), ["AuditEvent"]),
    Section(SYSTEM, _("System"), ["Organisation", "AuthToken", "AccessAttempt", "AccessFailureLog", "AccessLog"],
            full_admins_only=True),
]

# The plain name of each model's list, in the menu and as the list page's title. Library models are
# named for what they are to an administrator, not after the library (knox, django-axes).
PAGE_NAMES = {
    "User": _("Users"),
    "UserGroup": _("User groups"),
    "Invitation": _("Invitations"),
    "Device": _("Devices"),
    "DeviceCommand": _("Commands"),
    "RegistrationPin": _("Registration PINs"),
    "PinEnrollment": _("Provisioning packages"),
    "EntraSettings": _("Entra ID"),
    "JwksSet": _("Entra ID signing keys"),
    "EntraKeyAlert": _("Unknown Entra ID keys"),
    "EntraIdentity": _("Entra ID accounts"),
    "AutopilotDevice": _("Autopilot devices"),
    "DeviceImport": _("Device imports"),
    "Profile": _("Autopilot profiles"),
    "AutopilotEnrollment": _("Status pages"),
    "AppInstall": _("App installs"),
    "GraphConnector": _("Connection to Microsoft"),
    "ConfigurationGroup": _("Configuration groups"),
    "AuditEvent": _("Audit log"),
    "Organisation": _("Organisation"),
    "AuthToken": _("API tokens"),
    "AccessAttempt": _("Sign-in lockouts"),
    "AccessFailureLog": _("Failed sign-ins"),
    "AccessLog": _("Sign-in history"),
}

# The plain name of one row, where the model's own name is a library's or a protocol's word.
OBJECT_NAMES = {
    "AuthToken": _("API token"),
    "AccessAttempt": _("sign-in lockout"),
    "AccessFailureLog": _("failed sign-in"),
    "AccessLog": _("sign-in"),
    "JwksSet": _("Entra ID signing key set"),
    "EntraKeyAlert": _("unknown Entra ID key"),
    "EntraIdentity": _("Entra ID account"),
    "AutopilotEnrollment": _("status page"),
}

# Models only full administrators see and reach (mdmportal/admin.py enforces it on their pages).
SYSTEM_MODELS = {"AuthToken", "AccessAttempt", "AccessFailureLog", "AccessLog"}


def page_name(opts):
    """The plain name of a model's list page, from its _meta."""
    return PAGE_NAMES.get(opts.object_name) or capfirst(opts.verbose_name_plural)


def object_name(opts):
    """The plain name of one of a model's rows, from its _meta."""
    return OBJECT_NAMES.get(opts.object_name) or opts.verbose_name


def section_of(opts):
    """The section a model's pages belong to, or None."""
    for section in SECTIONS:
        if opts.object_name in section.entries:
            return section
    return None


def full_admin(request):
    """is_full_admin for the request's user, asked of the database once per request."""
    if not hasattr(request, "_console_full_admin"):
        request._console_full_admin = request.user.is_authenticated and is_full_admin(request.user)
    return request._console_full_admin


def _link_entry(link, models):
    """A Link as an app list row, when the user may view its model."""
    model = models.get(link.model)
    if model is None:
        return None
    try:
        url = reverse(link.url_name)
    except NoReverseMatch:
        return None
    if link.fragment:
        url = f"{url}#{link.fragment}"
    return {"name": link.name, "object_name": link.key, "admin_url": url, "add_url": None, "perms": {"view": True},
            "view_only": True}


def _mark_current(sections, path):
    """Flag the rows whose page the request is on (the dashboard only on itself), and their section."""
    for section in sections:
        for row in section["models"]:
            url = (row["admin_url"] or "").split("#")[0]
            row["current"] = bool(url) and (path == url if row["object_name"] == "overview" else path.startswith(url))
        section["current"] = any(row["current"] for row in section["models"])
    return sections


def app_list(request, built):
    """The task-ordered sections for `built`, Django's app dictionary (AdminSite._build_app_dict) holding
    only what the user may see: Django's app list shape (name, app_label, app_url, models), so that the
    stock templates draw it."""
    models = {row["object_name"]: row for app in built.values() for row in app["models"]}
    for name, row in models.items():
        row["name"] = PAGE_NAMES.get(name, row["name"])
    placed, sections = set(), []
    is_full = full_admin(request)
    for section in SECTIONS:
        if section.full_admins_only and not is_full:
            placed.update(section.entries)
            continue
        rows = []
        for entry in section.entries:
            if isinstance(entry, Link):
                row = _link_entry(entry, models)
            else:
                row = models.get(entry)
                placed.add(entry)
            if row is not None:
                rows.append(row)
        if section.key == DASHBOARD:
            rows = [{"name": _("Overview"), "object_name": "overview", "admin_url": reverse("admin:index"),
                     "add_url": None, "perms": {"view": True}, "view_only": True}]
        if rows:
            sections.append(_section(section.key, section.name, rows))
    others = [row for name, row in models.items() if name not in placed]
    if others:
        sections.append(_section("other", _("Other"), sorted(others, key=lambda row: str(row["name"]))))
    return _mark_current(sections, request.path)


def _section(key, name, rows):
    return {"name": name, "app_label": f"section-{key}", "app_url": rows[0]["admin_url"] or "",
            "has_module_perms": True, "models": rows}


def app_index_list(built):
    """Django's list for one app's index page, with the plain page names, and the app named after the
    section of its first model rather than after its library ("Knox", "Axes")."""
    for app in built:
        for row in app["models"]:
            row["name"] = PAGE_NAMES.get(row["object_name"], row["name"])
        section = section_of(app["models"][0]["model"]._meta) if app["models"] else None
        if section is not None:
            app["name"] = section.name
    return built
