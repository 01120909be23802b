"""Browser tests: Playwright driving Debian's Chromium headless against a live server on plain HTTP.

One browser for the package (starting Chromium costs about two seconds) and a new context per test
(fresh cookies, storage and permissions), so the tests stay independent and fast. Without Chromium
or Playwright the tests are skipped with a reason naming what is missing; with CI=true they fail.
"""
import os
from pathlib import Path

import factory.random
import pytest

from tests.services import service_missing

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; never a browser downloaded by `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800},
             "console": {"width": 1440, "height": 900}}
# The console's navigation sidebar starts closed (Django admin keeps that choice in localStorage), as an
# administrator reading a wide table has it: the device list's columns then fit on the page.
CLOSED_NAV_SIDEBAR = "localStorage.setItem('django.admin.navSidebarIsOpen', 'false')"
# Every page reports what its Content-Security-Policy refused (mdmportal/csp.py) on the console, where
# the open_page fixture collects it; a test fails if any page it opened had a violation. (An init script
# runs outside the page's policy.)
CSP_VIOLATION = "CSP violation:"
REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", event => console.error(
    `CSP violation: ${event.effectiveDirective} refused ${event.blockedURI || "inline"} `
    + `at ${event.sourceFile || event.documentURI}:${event.lineNumber}`), true);"""


@pytest.fixture(scope="package")
def browser():
    if not CHROMIUM.exists():
        service_missing(f"Chromium is not installed ({CHROMIUM}: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("Playwright is not installed (pip install -r requirements.txt)")
    # Playwright's sync API marks its asyncio loop as running in this thread between calls, and Django
    # then refuses ORM calls from this thread (SynchronousOnlyOperation). The tests' own ORM calls
    # (factories, assertions) are ordinary synchronous code that no loop is waiting on, so allow them
    # while the browser is up, and only then; the live server answers from threads of its own.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def same_fake_data_every_run():
    """Faker's names and keys repeat from run to run, so regenerated screenshots change only when the
    pages do."""
    factory.random.reseed_random("mdmportal browser tests")


@pytest.fixture
def portal(http_live_server, settings, organisation):
    """The live server, with the organisation set up and email links pointing at it."""
    settings.PORTAL_URL = http_live_server.url
    return http_live_server


@pytest.fixture
def csp_violations():
    """What the pages' Content-Security-Policy refused so far in this test, as the browser reported it."""
    return []


@pytest.fixture
def open_page(browser, portal, csp_violations):
    """Opens a page in a new browser context: `open_page("phone")`, `open_page("console")` for the console,
    `open_page(java_script_enabled=False)`. The test fails if a page reported a CSP violation."""
    contexts = []

    def collect(message):
        if message.text.startswith(CSP_VIOLATION) or "Content Security Policy" in message.text:
            csp_violations.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def open_page(viewport="desktop", **options):
        options = {"locale": "en-US", **options}
        context = browser.new_context(base_url=portal.url, viewport=VIEWPORTS[viewport], **options)
        context.set_default_timeout(10_000)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        if viewport == "console":
            context.add_init_script(CLOSED_NAV_SIDEBAR)
        context.on("console", collect)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    assert not csp_violations, "\n".join(csp_violations)
