"""The apps stand on floors and a floor never imports a higher one: shared helpers of the project
package (0), `accounts` — users, organisation, roles, lockout, registration settings, audit (1),
`pki` — our certificate authority, certificate requests, CMS, the forwarded client certificate (2),
`invitations` — invitations, their emails, the end-user pages (3), `enrollment` — the registration
protocol and the devices it enrolls (4), `management` — OMA-DM: sessions, the command queue, inventory,
device actions, configuration groups (5), `autopilot` (6), and the project assembly — settings, URLs,
the admin site, Celery, WSGI, checks, doctor (7). A lower floor learns of a higher one only through the
hooks the higher one registers in its AppConfig.ready (see the README's Code map).

Every module is read with `ast` (imports at the top of a module and inside its functions alike);
tests/, bench/ and migrations are outside the floors."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

APPS = {"accounts": 1, "pki": 2, "invitations": 3, "enrollment": 4, "management": 5, "autopilot": 6}

SHARED, ASSEMBLY = 0, 7

# Every module of the project package, named: a new one must be given its floor here.
MDMPORTAL = {
    # Shared helpers, used by every app: they import no app.
    "api": SHARED,
    "bulk": SHARED,
    "console": SHARED,
    "csp": SHARED,
    "charts": SHARED,  # SVG charts drawn on the server
    "csv_cells": SHARED,
    "device_requests": SHARED,
    "formats": SHARED,  # date formats per language (FORMAT_MODULE_PATH)
    "log_redaction": SHARED,
    "lookups": SHARED,
    "mail": SHARED,
    "nul_characters": SHARED,  # a middleware: a NUL in a query parameter is a 400
    "outbound": SHARED,
    "postgresql": SHARED,  # Django's PostgreSQL backend, its health check without a round trip
    "proxies": SHARED,
    "rows": SHARED,  # rows of explicit SQL as model instances
    "search": SHARED,
    "secret_settings": SHARED,
    "unavailable": SHARED,
    "windows_releases": SHARED,  # names of Windows builds and editions  # apps register their own answer for their URL namespace
    # The project assembly, above every app.
    "__init__": ASSEMBLY,
    "admin": ASSEMBLY,  # the System section's pages for full administrators only
    "admin_site": ASSEMBLY,
    "api_urls": ASSEMBLY,
    "apps": ASSEMBLY,
    "celery": ASSEMBLY,
    "checks": ASSEMBLY,
    "dashboard": ASSEMBLY,  # the console's figures and charts, from every app
    "doctor": ASSEMBLY,
    "error_pages": ASSEMBLY,  # reads the organisation's name
    "settings": ASSEMBLY,
    "urls": ASSEMBLY,
    "wsgi": ASSEMBLY,
    "management": ASSEMBLY,
    "navigation": ASSEMBLY,  # the console's sections, by task
    "templatetags": ASSEMBLY,
}

FLOOR_NAMES = {0: "shared helpers", 1: "accounts", 2: "pki", 3: "invitations", 4: "enrollment", 5: "management",
               6: "autopilot", 7: "project assembly"}


def _modules():
    """(dotted name, path) of every module on a floor."""
    for package in [*APPS, "mdmportal"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            yield ".".join(parts), path


def _floor(dotted):
    """The floor of a dotted module name, or None when it is not one of the project's."""
    parts = dotted.split(".")
    if parts[0] in APPS:
        return APPS[parts[0]]
    if parts[0] == "mdmportal":
        if len(parts) == 1:
            return MDMPORTAL["__init__"]
        return MDMPORTAL[parts[1]]
    return None


def _imports(dotted, path):
    """(line, imported dotted name) of every import of the module, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = dotted.split(".") if path.name == "__init__.py" else dotted.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from mdmportal import doctor` imports the module mdmportal.doctor.
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}" if _is_module(f"{module}.{alias.name}") else module


def _is_module(dotted):
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _edges():
    for dotted, path in _modules():
        for line, imported in _imports(dotted, path):
            if _floor(imported) is not None:
                yield dotted, path, line, imported


def test_every_project_module_has_a_floor():
    unplaced = sorted({path.relative_to(ROOT).parts[1].removesuffix(".py") for _, path in _modules()
                       if path.relative_to(ROOT).parts[0] == "mdmportal"} - set(MDMPORTAL))
    assert not unplaced, f"give these mdmportal modules a floor in MDMPORTAL: {unplaced}"


def test_no_module_imports_a_higher_floor():
    upward = sorted({
        f"{path.relative_to(ROOT)}:{line} ({FLOOR_NAMES[_floor(dotted)]}) imports {imported} "
        f"({FLOOR_NAMES[_floor(imported)]})"
        for dotted, path, line, imported in _edges()
        if _floor(imported) > _floor(dotted)
    })
    assert not upward, "imports of a higher floor:\n" + "\n".join(upward)


def test_no_import_cycle_between_apps():
    graph = {app: set() for app in APPS}
    for dotted, _, _, imported in _edges():
        source, target = dotted.split(".")[0], imported.split(".")[0]
        if source in APPS and target in APPS and source != target:
            graph[source].add(target)

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph[start])

    cycles = sorted(app for app in APPS if reaches(app, app))
    assert not cycles, f"apps on an import cycle: {cycles} ({ {a: sorted(t) for a, t in graph.items()} })"


@pytest.mark.parametrize("source, imported, upward", [
    ("management.omadm", "autopilot.status_page", True),
    ("autopilot.apps", "enrollment.wstep", False),
    ("autopilot.apps", "management.omadm", False),
    ("enrollment.wstep", "management.reconcile", True),
    ("enrollment.admin", "management.admin", True),
    ("management.omadm", "enrollment.models", False),
    ("mdmportal.urls", "management.device_urls", False),
    ("mdmportal.console", "accounts.roles", True),
    ("accounts.models", "invitations.tasks", True),
    ("invitations.sending", "accounts.models", False),
    ("mdmportal.urls", "enrollment.device_urls", False),
    ("pki.ca", "enrollment.models", True),
    ("pki.ca", "invitations.models", True),
    ("pki.passphrase", "accounts.models", False),
    ("enrollment.wstep", "pki.csr", False),
])
def test_the_floors_order_as_described(source, imported, upward):
    assert (_floor(imported) > _floor(source)) is upward
