"""The console's navigation by task (mdmportal/navigation.py): sections in the sidebar and on the
dashboard, plain page names, and the System section for full administrators only."""
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission

from mdmportal import navigation
from tests.factories import AdminFactory

SECTIONS = ["Dashboard", "Users &amp; invitations", "Devices", "Enrollment", "Windows Autopilot", "Configuration",
            "Audit"]
SYSTEM_PAGES = ["/admin/knox/authtoken/", "/admin/axes/accessattempt/", "/admin/axes/accessfailurelog/",
                "/admin/axes/accesslog/"]
LIBRARY_NAMES = ["Auth Token", "Auth token", "Axes", "JWKS", "Access attempt", "Knox", "PIN enrollments"]


def section_names(html):
    return re.findall(r'<caption><span class="section">([^<]+)</span></caption>', html)


def sidebar(html):
    start = html.index('id="nav-sidebar"')
    return html[start:html.index("</nav>", start)]


def test_the_dashboard_lists_pages_by_task_and_system_last_for_full_administrators(console, organisation):
    html = console.get("/admin/").content.decode()
    assert section_names(html) == [*SECTIONS[1:], "System"]  # the dashboard is the page itself
    for name in LIBRARY_NAMES:
        assert name not in html
    for page in ["Provisioning packages", "Registration PINs", "Sign-in method", "Enrollment URL", "Entra ID",
                 "API tokens", "Sign-in lockouts", "Audit log", "Status pages"]:
        assert f">{page}</a>" in html


def test_every_registered_model_has_a_section(console):
    named = {entry for section in navigation.SECTIONS for entry in section.entries if isinstance(entry, str)}
    registered = {model._meta.object_name for model in admin.site._registry}
    assert registered <= named
    assert set(navigation.PAGE_NAMES) >= registered


def test_the_sidebar_shows_sections_and_marks_the_current_page(console, organisation):
    html = console.get("/admin/enrollment/pinenrollment/").content.decode()
    nav = sidebar(html)
    assert section_names(nav) == [*SECTIONS, "System"]
    current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>', nav)
    assert current == [("/admin/enrollment/pinenrollment/", "Provisioning packages")]
    assert 'class="app-section-enrollment module current-app"' in nav


@pytest.mark.parametrize("path, title, section", [
    ("/admin/accounts/user/", "Users", "Users &amp; invitations"),
    ("/admin/enrollment/pinenrollment/", "Provisioning packages", "Enrollment"),
    ("/admin/enrollment/jwksset/", "Entra ID signing keys", "Enrollment"),
    ("/admin/knox/authtoken/", "API tokens", "System"),
    ("/admin/axes/accessattempt/", "Sign-in lockouts", "System"),
    ("/admin/accounts/auditevent/", "Audit log", "Audit"),
])
def test_list_pages_are_titled_in_plain_words(console, organisation, path, title, section):
    html = console.get(path).content.decode()
    assert f"<h1>{title}</h1>" in html
    assert f"<title>{title} | mdmportal</title>" in html
    assert "Select " not in html.split("<body")[0] and "to change" not in html.split('id="content"')[1][:300]
    breadcrumbs = html[html.index('class="breadcrumbs"'):]
    breadcrumbs = breadcrumbs[:breadcrumbs.index("</div>")]
    assert f"&rsaquo; {section}\n&rsaquo; {title}" in breadcrumbs


def test_a_form_names_its_section_and_list_in_breadcrumbs(console, alice):
    html = console.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    breadcrumbs = html[html.index('class="breadcrumbs"'):]
    breadcrumbs = breadcrumbs[:breadcrumbs.index("</div>")]
    assert '&rsaquo; Users &amp; invitations\n&rsaquo; <a href="/admin/accounts/user/">Users</a>' in breadcrumbs


def test_sign_in_method_leads_to_its_fieldset(console, organisation):
    html = console.get("/admin/").content.decode()
    assert 'href="/admin/accounts/organisation/#fieldset-0-1-heading">Sign-in method</a>' in html
    page = console.get("/admin/accounts/organisation/", follow=True).content.decode()
    assert re.search(r'id="fieldset-0-1-heading"[^>]*>Enrollment sign-in<', page)


@pytest.mark.parametrize("role", ["enrollment_admin", "helpdesk"])
def test_other_roles_neither_see_nor_reach_the_system_section(client, organisation, role, request):
    client.force_login(request.getfixturevalue(role))
    html = client.get("/admin/").content.decode()
    assert "System" not in section_names(html)
    assert "Users &amp; invitations" in section_names(html)
    for path in SYSTEM_PAGES:
        assert path not in html
        assert client.get(path).status_code == 403
    assert client.get("/admin/knox/authtoken/add/").status_code == 403
    assert client.get("/admin/axes/").status_code == 404


def test_permissions_given_by_hand_do_not_open_the_system_section(client, organisation):
    """A staff member given the libraries' permissions directly, without the Full administrator role."""
    staff = AdminFactory(is_superuser=False, email="staff@example.com")
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["knox", "axes"]))
    client.force_login(staff)
    assert "System" not in section_names(client.get("/admin/").content.decode())
    for path in SYSTEM_PAGES:
        assert client.get(path).status_code == 403


def test_full_administrators_reach_the_system_section(client, organisation, full_admin):
    client.force_login(full_admin)
    assert section_names(client.get("/admin/").content.decode())[-1] == "System"
    for path in SYSTEM_PAGES:
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("path, title", [
    ("/admin/knox/authtoken/add/", "Add API token"),
    ("/admin/accounts/user/add/", "Add user"),
])
def test_forms_are_titled_in_plain_words(console, organisation, path, title):
    html = console.get(path).content.decode()
    assert f"<h1>{title}</h1>" in html and f"<title>{title} | mdmportal</title>" in html
    assert "auth token" not in html.lower()


def test_a_read_only_form_says_view(client, helpdesk, alice):
    client.force_login(helpdesk)
    html = client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert "<h1>View user</h1>" in html


def test_sections_and_titles_are_translated(console, organisation):
    console.cookies["django_language"] = "fr"
    html = console.get("/admin/enrollment/pinenrollment/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert section_names(sidebar(html)) == ["Tableau de bord", "Utilisateurs et invitations", "Appareils",
                                            "Inscription", "Windows Autopilot", "Configuration", "Audit", "Système"]
    assert "<h1>Packages de provisionnement</h1>" in html
    assert "<h1>Ajout : jeton d’API</h1>" in console.get("/admin/knox/authtoken/add/").content.decode()


def test_an_app_page_uses_plain_words_too(console, organisation):
    html = console.get("/admin/knox/").content.decode()
    assert "Knox" not in html and ">API tokens</a>" in html
    assert "<h1>System administration</h1>" in html
