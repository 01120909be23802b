"""What the browser tests do on many pages: sign in, read the enrollment page, keep screenshots.

Playwright is imported inside the functions so that a machine without it collects these tests and
skips them with a reason (see conftest.py) instead of failing to import them."""
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.factories import PASSWORD

# `SCREENSHOTS_DIR=docs/screenshots ./test -m browser` (bin/screenshots) refreshes the README's pictures.
SCREENSHOTS_DIR = os.environ.get("SCREENSHOTS_DIR")
ONE_CLICK_LINK = re.compile(r"ms-device-enrollment:\?mode=mdm&username=[^&\s]+&servername=[^&\s]+")


def expect(target):
    from playwright.sync_api import expect

    return expect(target)


def screenshot(page, name, *, full_page=True):
    if SCREENSHOTS_DIR:
        path = Path(SCREENSHOTS_DIR) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=full_page, animations="disabled", caret="hide")


def sign_in_console(page, user, password=PASSWORD):
    page.goto("/admin/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def sign_in_portal(page, identity, password=PASSWORD):
    """Through /go, as the address users are given: it asks for a sign-in, then shows /enroll."""
    page.goto("/go")
    expect(page).to_have_url(re.compile(r"/login\?next=/enroll$"))
    page.get_by_label("Email or username").fill(identity)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/enroll$"))


def enrollment_link_values(page):
    """The one-click link's parameters, after checking it is well-formed (every value percent-encoded)."""
    href = page.locator("a[href^='ms-device-enrollment:']").get_attribute("href")
    assert ONE_CLICK_LINK.fullmatch(href), href
    query = parse_qs(urlsplit(href).query, strict_parsing=True)
    return {name: values[0] for name, values in query.items()}


def assert_fits_horizontally(page, locator):
    """Neither the page nor the element scrolls sideways, and the element lies inside the viewport."""
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = locator.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)
    assert locator.evaluate("element => element.scrollWidth <= element.clientWidth")


def assert_enrollment_page(page, user, enrollment_url):
    """Everything a user needs to enroll, visible on the page whatever the viewport."""
    heading = page.get_by_role("heading", name="Enroll your device", exact=True)
    expect(heading).to_be_visible()
    header = page.locator(".site-header").bounding_box()
    assert heading.bounding_box()["y"] - (header["y"] + header["height"]) >= 16, "the title touches the header"
    server_address = page.locator("#server-address")
    expect(server_address).to_have_text(enrollment_url)
    expect(server_address).to_be_in_viewport()
    assert_fits_horizontally(page, server_address)
    expect(page.locator(".details")).to_contain_text(user.email)
    expect(page.get_by_role("heading", name="Windows 10 and Windows 11")).to_be_visible()
    expect(page.get_by_role("heading", name="HoloLens 2")).to_be_visible()
    expect(page.locator("#windows-title + .steps > li")).to_have_count(7)
    expect(page.locator("#hololens-title + .steps > li")).to_have_count(6)
    expect(page.get_by_role("link", name="Enroll this device")).to_be_visible()
    assert enrollment_link_values(page) == {"mode": "mdm", "username": user.enrollment_username,
                                            "servername": enrollment_url}


def assert_copy_button_copies(page, text):
    """The Copy button puts `text` on the clipboard and says so (the context must allow the clipboard)."""
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator(".copy-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == text
