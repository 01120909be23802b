"""The device simulator declares the protocol on its own, as a Windows client would: it imports
nothing of the server (the project's apps, the mdmportal project package, Django). A client that
shared the server's code or literals would agree with the server's mistakes instead of catching them.

Read from the source with `ast`, so that imports inside functions count too."""
import ast
from pathlib import Path

from django.conf import settings

SIMULATOR = Path(__file__).resolve().parent.parent / "simulator"


def server_packages():
    """The top-level packages of the project's apps (those living in this repository), mdmportal and Django."""
    root = SIMULATOR.parent
    apps = {app.split(".")[0] for app in settings.INSTALLED_APPS}
    return {name for name in apps if (root / name).is_dir()} | {"mdmportal", "django"}


def imported_modules(tree):
    """Every module an import statement of `tree` names (absolute form; relative ones stay in the package),
    and every dynamic import (`__import__`, `importlib.import_module`), which the check cannot follow."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("__import__", "import_module"):
                yield f"<dynamic import at line {node.lineno}>"


def test_the_server_packages_are_known():
    assert {"accounts", "enrollment", "invitations", "autopilot", "mdmportal", "django"} <= server_packages()


def test_the_simulator_imports_nothing_of_the_server():
    forbidden = server_packages()
    sources = sorted(SIMULATOR.rglob("*.py"))
    assert sources, f"no Python source under {SIMULATOR}"
    found = []
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in imported_modules(tree):
            top = module.split(".")[0]
            if top in forbidden or module.startswith("<dynamic"):
                found.append(f"{path.relative_to(SIMULATOR.parent)}: {module}")
    assert found == []
