"""Every console page and every end-user page, at a laptop's size (1366×900) and a phone's (390×844), in
English and in French: none is wider than the window, none has a console error (a script error, a 404 or
any failed resource, a Content-Security-Policy violation), none answers with an error; and the French
console shows no English.

Which pages: the dashboard, then, for every model of the console's site, its list, its add page and the
change, history and delete pages of an object of the world below; then every console link those pages
hold (custom views: action pages, reports, confirmations), at most once per URL name and arguments. Every
console URL must be visited or named in NOT_VISITED with its reason, so a new page is swept as soon as
it exists. The end-user pages are listed in PORTAL_PAGES and checked the same way against the portal's
URL names.

One browser for the package, one signed-in context per language and size (sweep_console below)."""
import re
from dataclasses import dataclass, field
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.core import mail
from django.db import OperationalError, models
from django.test import RequestFactory
from django.urls import Resolver404, get_resolver, resolve, reverse
from django.utils import timezone
from django.utils.translation import trans_real

from accounts.models import AuditEvent, Organisation
from invitations import password_reset
from tests import entra_tokens as tokens
from tests.browser.conftest import REPORT_CSP_VIOLATIONS
from tests.browser.pages import screenshot
from tests.enrollment_soap import service_url
from tests.factories import (
    PASSWORD, AdminFactory, AuditEventFactory, InvitationEmailFactory, InvitationFactory, UrlRotationFactory,
    UserFactory, UserGroupFactory,
)
from tests.factories_autopilot import (
    AppInstallFactory, AutopilotDeviceFactory, AutopilotEnrollmentFactory, DeviceImportFactory, EssentialAppFactory,
    GroupTagRuleFactory, ImportRowFactory, ProfileFactory, ProvisioningItemFactory,
)
from tests.factories_enrollment import (
    ConfigurationGroupFactory, DeviceCommandFactory, DeviceFactory, EntraIdentityFactory, EntraKeyAlertFactory,
    EntraSettingsFactory, GroupSettingFactory, JwksSetFactory, ManagementSessionFactory, PinEnrollmentFactory,
    PinEnrollmentFailureFactory, RegistrationPinFactory, create_ca_chain,
)
from tests.factories_graph import GraphConnectorFactory

pytestmark = pytest.mark.browser

SIZES = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-US", "fr": "fr-FR"}

# Console URL names the sweep does not open, and why. Everything else under /admin/ is opened.
NOT_VISITED = {
    "logout": "signs out (POST)",
    "autocomplete": "JSON for the select boxes' search",
    "jsi18n": "a script, loaded by the pages that use it",
    "view_on_site": "redirects to the object's page outside the console",
    "password_change_done": "the page after a password change (POST)",
    "login": "signed in, it redirects to the dashboard; the end-user sweep opens it signed out",
    "autopilot_graphconnector_test": "POST only: calls Microsoft Graph",
    "autopilot_graphconnector_sync": "POST only: starts a synchronisation",
    "enrollment_entrasettings_fetch": "POST only: downloads the signing keys",
    "enrollment_entrasettings_switch": "POST only: switches the active signing keys",
    "accounts_user_export": "a CSV download",
    "accounts_auditevent_export": "a CSV download",
    "autopilot_autopilotdevice_export": "a CSV download",
    "autopilot_profile_offline_file": "a JSON download",
    "enrollment_pinenrollment_wcd_project": "POST only: a ZIP download for a typed PIN",
}

# -- the world the pages show ------------------------------------------------------------------------

LONG_SMTP_REASON = ("SMTP 550 5.1.1 <bruno.petit-de-la-fontaine@contoso.com>: Recipient address rejected: User "
                    "unknown in virtual mailbox table (in reply to RCPT TO command)")


@dataclass
class World:
    admin: object
    end_user: object
    objects: dict = field(default_factory=dict)  # model label -> the object whose pages are opened
    invitation_link: str = ""


def build_world(portal_url):
    """One object (or more) of every model the console shows, in the states that make pages long or wide:
    a failed invitation with its SMTP reason, a device with sixty commands and a wipe queued, long names."""
    from management import actions

    organisation = Organisation.get()
    create_ca_chain()
    root = AdminFactory(email="root@contoso.com", display_name="Root Administrator")
    alice = UserFactory(email="alice@contoso.com", display_name="Alice Martin")
    bruno = UserFactory(email="bruno.petit-de-la-fontaine@contoso.com", display_name="Bruno Petit de la Fontaine",
                        french=True)
    carol = UserFactory(email="carol@contoso.com", display_name="Carol Dupont", no_password=True)
    group = UserGroupFactory(name="Field engineers", members=[alice, bruno])

    failed = InvitationFactory(user=bruno, status="failed", failure_reason=LONG_SMTP_REASON,
                               sent_at=timezone.now())
    InvitationEmailFactory(invitation=failed, status="failed", attempts=5, error=LONG_SMTP_REASON)
    InvitationFactory(user=alice, accepted=True, sent_at=timezone.now(), opened_at=timezone.now(),
                      completed_at=timezone.now())
    UrlRotationFactory(version=2, total=204, done=204, finished_at=timezone.now())
    from invitations import sending

    sending.invite([carol], actor=root)
    [message] = [m for m in mail.outbox if m.to == [carol.email]]
    link = re.search(r"^(http://\S+/invite/\S+)$", message.body, re.MULTILINE).group(1)

    pc = DeviceFactory(user=alice, name="PC-ALICE", manufacturer="Contoso Computers", model="Surface Laptop 7",
                       serial_number="SN-0042", total_ram_mb=16384, architecture="x64",
                       os_version="10.0.26100.2605", last_seen_at=timezone.now() - timedelta(minutes=5),
                       inventory_at=timezone.now())
    session = ManagementSessionFactory(device=pc)
    for n in range(60):
        DeviceCommandFactory(device=pc, succeeded=True, session=session, source="inventory",
                             target=f"./Device/Vendor/MSFT/Policy/Config/Experience/AllowCortana/{n}",
                             result_data="1")
    actions.run("sync", [pc], root)
    wiped = DeviceFactory(user=bruno, name="PC-BRUNO-WITH-A-RATHER-LONG-NAME", model="ThinkPad X1 Carbon Gen 12")
    actions.run("wipe", [wiped], root, confirmation=str(wiped))
    retiring = DeviceFactory(user=alice, name="PC-RETIRING")
    actions.run("retire", [retiring], root)
    DeviceFactory(user=bruno, hololens=True, name="HOLOLENS-BRUNO",
                  last_seen_at=timezone.now() - timedelta(days=12))
    DeviceFactory(user=alice, replaced=True, name="PC-ALICE-OLD")

    configuration = ConfigurationGroupFactory(name="Kiosks in the reception areas", members=[pc])
    GroupSettingFactory(group=configuration)
    GroupSettingFactory(group=configuration, raw=True)
    pin_enrollment = PinEnrollmentFactory(owner=root, name="Training room laptops",
                                          configuration_groups=[configuration])
    PinEnrollmentFailureFactory(pin_enrollment=pin_enrollment)
    RegistrationPinFactory(user=alice)
    EntraSettingsFactory()
    JwksSetFactory()
    EntraKeyAlertFactory()
    EntraIdentityFactory(user=alice)

    GraphConnectorFactory()
    profile = ProfileFactory(name="Standard user PCs", configuration_groups=[configuration])
    GroupTagRuleFactory(profile=profile)
    app = EssentialAppFactory(profile=profile, name="Contoso agent")
    record = AutopilotDeviceFactory(profile=profile, group_tag="Sales")
    device_import = DeviceImportFactory(done=True, total_rows=2, processed_rows=2, created_count=1, failed_count=1,
                                        uploaded_by=root, finished_at=timezone.now())
    ImportRowFactory(device_import=device_import, device=record, serial_number=record.serial_number)
    ImportRowFactory(device_import=device_import, result="failed", message="The hardware hash is not base64.")
    enrollment = AutopilotEnrollmentFactory(device=pc, record=record)
    ProvisioningItemFactory(enrollment=enrollment)
    AppInstallFactory(device=pc, app=app, stalled=True)

    from knox.models import AuthToken

    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from invitations import api_tokens

    api_tokens.issue(root, actor=root, via="console")
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        model.objects.create(username="mallory@contoso.com", ip_address="203.0.113.9", user_agent="curl/8.5",
                             http_accept="*/*", path_info="/login", attempt_time=timezone.now(),
                             **({"failures_since_start": 6} if model is AccessAttempt else {}))
    AuditEventFactory(action="device.wipe", actor=root, actor_label=root.email, target_label=str(wiped),
                      detail={"via": "console", "what": ["Exec ./Device/Vendor/MSFT/RemoteWipe/doWipe"]})

    world = World(admin=root, end_user=alice, invitation_link=link)
    # The object of each model whose pages are opened: the richest one, else the first.
    chosen = {"enrollment.Device": pc, "accounts.User": alice, "invitations.Invitation": failed,
              "accounts.Organisation": organisation, "accounts.UserGroup": group, "knox.AuthToken":
              AuthToken.objects.first(), "management.ConfigurationGroup": configuration,
              "enrollment.PinEnrollment": pin_enrollment, "autopilot.Profile": profile,
              "autopilot.DeviceImport": device_import, "autopilot.AutopilotDevice": record,
              "accounts.AuditEvent": AuditEvent.objects.filter(action="device.wipe").first()}
    for model in admin.site._registry:
        label = model._meta.label
        world.objects[label] = chosen.get(label) or model._default_manager.order_by("pk").first()
        assert world.objects[label] is not None, f"the world has no {label}: add one to build_world()"
    del portal_url
    return world


# -- visiting pages ----------------------------------------------------------------------------------

COLLECT_TEXT = """() => {
    // Visible text as a reader sees it: text nodes, button labels and the options of visible menus.
    const out = [];
    const skip = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "CODE", "PRE", "TEXTAREA", "SAMP", "KBD"]);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest("script,style,noscript,code,pre,textarea,samp,kbd,.data")) continue;
        const text = node.textContent.replace(/\\s+/g, " ").trim();
        if (!text) continue;
        const visible = parent.closest("select") ? parent.closest("select").checkVisibility()
                                                : parent.checkVisibility();
        if (visible) out.push(text);
    }
    for (const input of document.querySelectorAll("input[type=submit], input[type=button], [placeholder], [title], [aria-label]")) {
        if (!input.checkVisibility()) continue;
        for (const value of [input.type === "submit" || input.type === "button" ? input.value : "",
                             input.getAttribute("placeholder"), input.getAttribute("title"),
                             input.getAttribute("aria-label")]) {
            if (value && value.trim()) out.push(value.trim());
        }
    }
    return out;
}"""


@dataclass
class Visit:
    url: str
    status: int = 0
    width: int = 0
    text: list = field(default_factory=list)
    problems: list = field(default_factory=list)


class Sweeper:
    """One browser context (language, size, signed-in user) and what went wrong on the pages it opened."""

    def __init__(self, browser, base_url, size, language, **options):
        self.context = browser.new_context(base_url=base_url, viewport=SIZES[size], locale=LOCALES[language],
                                           **options)
        self.context.set_default_timeout(15_000)
        self.context.add_init_script(REPORT_CSP_VIOLATIONS)
        self.page = self.context.new_page()
        self.size, self.language, self.base_url = size, language, base_url
        self.current = None
        self.visits = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self._problem(f"script error: {error}"))
        # A request aborted because the test moved on to the next page is no failure of the page.
        self.page.on("requestfailed", lambda request: None if request.failure == "net::ERR_ABORTED" else
                     self._problem(f"request failed: {request.url} ({request.failure})"))
        self.page.on("response", self._response)

    def _problem(self, text):
        if self.current is not None:
            self.current.problems.append(text)

    def _console(self, message):
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self._problem(f"console {message.type}: {message.text}")

    def _response(self, response):
        if response.status >= 400 and response.request.resource_type != "document":
            self._problem(f"{response.status} for {response.url}")

    def visit(self, url, *, expect_status=200, collect_text=False):
        visit = Visit(url)
        self.current = visit
        response = self.page.goto(url, wait_until="load")
        visit.status = response.status if response else 0
        if visit.status != expect_status:
            visit.problems.append(f"answered {visit.status}, not {expect_status}")
        elif expect_status != 200:
            # The browser reports the page's own status as a failed load: expected here.
            own = f"console error: Failed to load resource: the server responded with a status of {expect_status}"
            visit.problems = [problem for problem in visit.problems if not problem.startswith(own)]
        visit.width = self.page.evaluate("document.documentElement.scrollWidth")
        inner = self.page.evaluate("window.innerWidth")
        if visit.width > inner:
            wide = self.page.evaluate("""(inner) => [...document.querySelectorAll("body *")]
                .filter(e => e.getBoundingClientRect().right > inner + 1 && e.checkVisibility())
                .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= inner + 1)
                .slice(0, 4).map(e => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}`
                    + `${e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\\s+/).join(".") : ""}`
                    + ` (right ${Math.round(e.getBoundingClientRect().right)})`)""", inner)
            visit.problems.append(f"{visit.width} px wide in a {inner} px window: {', '.join(wide)}")
        if self.size == "laptop":
            # On a laptop every column of a list shows: a table may scroll sideways in its box on a phone only.
            cut = self.page.evaluate("""[...document.querySelectorAll(".results, .table-scroll")]
                .filter(e => e.scrollWidth > e.clientWidth + 1)
                .map(e => `${e.className} shows ${e.clientWidth} of ${e.scrollWidth} px (columns: `
                    + [...e.querySelectorAll("thead th")].map(th => `${th.textContent.trim() || "☐"} `
                    + Math.round(th.getBoundingClientRect().width)).join(", ") + ")")""")
            visit.problems += [f"a table is cut: {what}" for what in cut]
        if collect_text:
            visit.text = self.page.evaluate(COLLECT_TEXT)
        self.current = None
        self.visits.append(visit)
        return visit

    def links(self):
        """The console links of the page, as paths with their query."""
        hrefs = self.page.evaluate("""[...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href"))""")
        found = []
        for href in hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path.startswith("/admin/"):
                continue
            found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        return found

    def close(self):
        self.context.close()

    def report(self):
        return [f"[{self.language} {self.size}] {visit.url}: {problem}"
                for visit in self.visits for problem in visit.problems]


def sign_in_console(sweeper, user):
    page = sweeper.page
    page.goto("/admin/login/?next=/admin/")
    page.locator("#id_username").fill(user.email)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))


def admin_url_names():
    """Every named URL of the console: name -> pattern."""
    names = {}

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
            elif pattern.name:
                names[pattern.name] = str(pattern.pattern)

    walk(admin.site.get_urls())
    return names


def visit_key(path):
    """Pages differing only by the object they show are one page: (URL name, other arguments)."""
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        return None
    if match.namespace != "admin":
        return None
    arguments = tuple(sorted((k, v) for k, v in match.kwargs.items() if k not in ("object_id", "pk")))
    return match.url_name, arguments


def seed_urls(world):
    """The dashboard and the console's pages without arguments (the wizard's steps), then each model's list,
    its add page and its object's change, history and delete pages, as far as the administrator may: the
    URLs, and the names of the pages the console refuses them (no add or delete page for that model)."""
    request = RequestFactory().get("/admin/")
    request.user = world.admin
    urls, refused = [reverse("admin:index")], set()
    # Each app's own index page (the navigation links sections, not apps, so no link leads there).
    urls += sorted({reverse("admin:app_list", args=[model._meta.app_label]) for model in admin.site._registry})
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        obj = world.objects[model._meta.label]
        urls.append(reverse("admin:%s_%s_changelist" % info))
        if model_admin.has_add_permission(request):
            urls.append(reverse("admin:%s_%s_add" % info))
        else:
            refused.add("%s_%s_add" % info)
        urls.append(reverse("admin:%s_%s_change" % info, args=[obj.pk]))
        urls.append(reverse("admin:%s_%s_history" % info, args=[obj.pk]))
        if model_admin.has_delete_permission(request, obj):
            urls.append(reverse("admin:%s_%s_delete" % info, args=[obj.pk]))
        else:
            refused.add("%s_%s_delete" % info)
    urls += [reverse(f"admin:{name}") for name, route in admin_url_names().items()
             if "<" not in route and "(?P" not in route and name not in {*NOT_VISITED, *refused, "login", "index"}]
    return urls, refused


def sweep_console(sweeper, world, *, collect_text=False):
    """Open the seeds, then every console link found on the way, once per (URL name, arguments)."""
    queue, refused = seed_urls(world)
    seen = set()
    while queue:
        url = queue.pop(0)
        key = visit_key(url)
        if key is None or key in seen or key[0] in NOT_VISITED or key[0] is None:
            continue
        seen.add(key)
        sweeper.visit(url, collect_text=collect_text)  # after its redirects, if any
        seen.add(visit_key(sweeper.page.url.removeprefix(sweeper.base_url)))
        queue.extend(sweeper.links())
    return {name for name, _ in seen} | refused


def portal_pages(world, portal_url, organisation):
    """The end-user pages: (path, status, signed in?)."""
    return [
        ("/login", 200, False),
        ("/admin/login/", 200, False),
        (world.invitation_link.removeprefix(portal_url), 200, False),
        ("/invite/not-a-token", 404, False),
        ("/password/reset", 200, False),
        ("/password/reset-sent", 200, False),
        (password_reset.reset_url(world.objects["accounts.User"]).removeprefix(portal_url), 200, False),
        ("/password/reset-done", 200, False),
        (f"{service_url(organisation, 'signin')}?appru=ms-app://windows.immersivecontrolpanel"
         "&login_hint=alice@contoso.com", 200, False),
        ("/enroll", 200, True),
    ]


PORTAL_URL_NAMES_NOT_VISITED = {
    "invitations:logout": "signs out (POST)",
    "invitations:set_language": "the language switch (a POST that redirects back: tests/test_language_switch.py)",
    "invitations:go": "redirects to /login or /enroll, both opened",
    "invitations:request_pin": "POST only: issues a registration PIN, shown on /enroll",
}


def sweep_portal(new_sweeper, base_url, world, organisation, size, language):
    sweeper = new_sweeper(size, language)
    pages = portal_pages(world, base_url, organisation)
    for path, status, signed_in in pages:
        if signed_in and not sweeper.page.url.endswith("/enroll"):
            # By the form's fields, whatever the language of their labels.
            sweeper.page.goto("/login?next=/enroll")
            sweeper.page.locator("input[name=identity]").fill(world.end_user.email)
            sweeper.page.locator("input[name=password]").fill(PASSWORD)
            sweeper.page.locator("form button[type=submit], form input[type=submit]").last.click()
            sweeper.page.wait_for_url(re.compile(r"/enroll$"))
        sweeper.visit(path, expect_status=status)
    # The terms of use Windows shows before an Entra ID join (a bearer token in the request).
    terms = new_sweeper(size, language, extra_http_headers={
        "Authorization": f"Bearer {tokens.make_token()}", "CXH-HOST": "FRX"})
    terms.visit("/EnrollmentServer/TermsOfUse?redirect_uri=ms-appx-web%3A%2F%2FMicrosoft.AAD.BrokerPlugin"
                "&client-request-id=1&api-version=1.0&mode=azureadjoin")
    # The page shown while PostgreSQL or Redis cannot be reached.
    with patch.object(Organisation, "get", autospec=True, side_effect=OperationalError("down")):
        terms.visit("/login", expect_status=503)
    return sweeper.report() + terms.report()


# -- the tests -------------------------------------------------------------------------------------------

@pytest.fixture
def world(portal, organisation):
    return build_world(portal.url)


@pytest.fixture
def new_sweeper(browser, portal):
    """Sweeper(size, language, **context options), closed after the test even when it fails: the live
    server waits for the browser's open connections before it stops."""
    sweepers = []

    def new_sweeper(size, language, **options):
        sweepers.append(Sweeper(browser, portal.url, size, language, **options))
        return sweepers[-1]

    yield new_sweeper
    for sweeper in sweepers:
        sweeper.close()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("language", LOCALES)
def test_every_console_page_fits_and_loads_cleanly(new_sweeper, world, size, language):
    world.admin.language = language
    world.admin.save(update_fields=["language"])
    sweeper = new_sweeper(size, language)
    sign_in_console(sweeper, world.admin)
    visited = sweep_console(sweeper, world)
    if language == "en":  # the README's pictures (bin/screenshots), of this world
        suffix = "" if size == "laptop" else "-phone"
        for name, url in [("console-dashboard", reverse("admin:index")),
                          ("console-invitations", reverse("admin:invitations_invitation_changelist")),
                          ("console-device", reverse("admin:enrollment_device_change",
                                                     args=[world.objects["enrollment.Device"].pk]))]:
            sweeper.page.goto(url)
            screenshot(sweeper.page, f"{name}{suffix}", full_page=name == "console-dashboard" or size == "phone")

    unvisited = set(admin_url_names()) - visited - set(NOT_VISITED)
    assert not unvisited, f"console pages no link or seed reached (visit them or say why in NOT_VISITED): {unvisited}"
    problems = sweeper.report()
    assert not problems, f"{len(problems)} problems on {len(sweeper.visits)} pages:\n" + "\n".join(problems)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("language", LOCALES)
def test_every_end_user_page_fits_and_loads_cleanly(new_sweeper, portal, world, organisation, size, language):
    problems = sweep_portal(new_sweeper, portal.url, world, organisation, size, language)
    assert not problems, "\n".join(problems)


def test_every_portal_url_is_swept(world, portal, organisation):
    """The end-user pages above are all the portal's pages (a new page joins portal_pages())."""
    visited = set()
    for path, _, _ in portal_pages(world, portal.url, organisation):
        match = resolve(urlsplit(path).path)
        visited.add(f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name)
    names = set()
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", []):
            namespace = getattr(pattern, "namespace", None)
            if namespace == "invitations" and inner.name:
                names.add(f"invitations:{inner.name}")
    assert names - visited - set(PORTAL_URL_NAMES_NOT_VISITED) == set()


# -- French: no English left on the console ----------------------------------------------------------

WORD = re.compile(r"[^\W\d_]{3,}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Words a French page shows that are in no French message of the catalogues: names of products and
# protocols, and abbreviations.
SAME_IN_FRENCH = {
    "windows", "hololens", "autopilot", "entra", "microsoft", "intune", "mdmportal", "oma", "syncml", "csv",
    "json", "url", "urls", "api", "pin", "pins", "mdm", "upn", "utc", "smtp", "wipe", "msi", "jwks", "graph",
    "devdetail", "devinfo", "ppkg", "wcd", "uri", "locuri", "oid", "guid", "sha", "tpm", "english",
    # Windows editions, by Microsoft's names (Pro, Holographic for Business) and the file name Windows
    # looks for (AutopilotConfigurationFile.json).
    "pro", "holographic", "business", "autopilotconfigurationfile",
    # OMA-DM Format values a custom command offers, written as the protocol spells them (MS-MDM, Format).
    "node", "bin", "time",
}
# Texts made by a library from its own data: django-axes names an access attempt "Attempted Access: <time>".
LIBRARY_TEXTS = ("Attempted Access: ",)


def french_vocabulary():
    """Every word the French catalogues use in a translation: Django's, the apps' and locale/, the server's
    (django) and the scripts' (djangojs: the admin's widgets)."""
    import gettext as gettext_module
    from pathlib import Path

    words = set()

    def add(text):
        words.update(word.lower() for word in WORD.findall(text))

    catalog = trans_real.translation("fr")._catalog
    for key in catalog.keys():
        value = catalog[key]
        add(value if isinstance(value, str) else " ".join(value))
    directories = [Path(trans_real.__file__).parents[2] / "conf" / "locale", *trans_real.all_locale_paths(),
                   *(Path(config.path) / "locale" for config in apps.get_app_configs())]
    for directory in directories:
        try:
            scripts = gettext_module.translation("djangojs", str(directory), ["fr"])
        except OSError:
            continue
        for value in scripts._catalog.values():
            add(value)
    return words


def data_vocabulary():
    """Every word of the world's data (names, emails, models, OMA-URIs): shown as they are in any language."""
    words = set()
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields
                  if isinstance(f, (models.CharField, models.TextField, models.JSONField))]
        if not fields:
            continue
        for row in model._default_manager.values_list(*fields):
            for value in row:
                if value:
                    words.update(word.lower() for word in WORD.findall(str(value)))
    return words


def test_the_french_console_shows_no_english(new_sweeper, world):
    world.admin.language = "fr"
    world.admin.save(update_fields=["language"])
    sweeper = new_sweeper("laptop", "fr")
    sign_in_console(sweeper, world.admin)
    sweep_console(sweeper, world, collect_text=True)
    known = french_vocabulary() | data_vocabulary() | SAME_IN_FRENCH
    offenders = {}
    for visit in sweeper.visits:
        for text in visit.text:
            if "://" in text:
                continue  # an address (the enrollment URL), shown as it is
            if any(library in text for library in LIBRARY_TEXTS) or UUID.fullmatch(text.strip()):
                continue  # a library's text, or an id (a profile's correlation id)
            words = WORD.findall(text)
            if text.endswith("…") and words:
                words = words[:-1]  # data cut short (a long SMTP reply): its last word is a fragment
            english = [word for word in words if word.lower() not in known]
            if english:
                offenders.setdefault(text, (visit.url, english))
    assert not offenders, f"{len(offenders)} strings in English on the French console:\n" + "\n".join(
        f"{url}: {text!r} ({', '.join(words)})" for text, (url, words) in sorted(offenders.items(),
                                                                              key=lambda i: i[1][0]))
