"""Error pages: 400, 403, 404, 500 and the CSRF refusal carry the organisation's name and are in the
visitor's language; the 500 page still renders (without a name) when the database cannot be reached.
DEBUG is off in the tests, as in production, so Django hands every error to mdmportal/error_pages.py."""
import socket

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, connections
from django.test import Client

from tests.factories import PASSWORD, AdminFactory, OrganisationFactory

FRENCH = {"HTTP_ACCEPT_LANGUAGE": "fr"}


@pytest.fixture
def contoso(db):
    return OrganisationFactory(name="Contoso Équipement")


def page(response):
    return response.content.decode()


@pytest.mark.parametrize("headers, title", [({}, "Page not found"), (FRENCH, "Page introuvable")])
def test_404_has_the_organisation_name_in_the_visitor_language(client, contoso, headers, title):
    response = client.get("/no-such-page", **headers)

    assert response.status_code == 404
    assert f"<title>{title} · Contoso Équipement</title>" in page(response)
    assert '<span class="brand">Contoso Équipement</span>' in page(response)


def test_400_for_a_host_the_site_does_not_serve(client, contoso):
    response = client.get("/go", HTTP_HOST="attacker.example", **FRENCH)

    assert response.status_code == 400
    assert "Requête incorrecte · Contoso Équipement" in page(response)


def test_403_for_a_console_page_the_administrator_may_not_open(client, contoso):
    helpdesk = AdminFactory(email="helpdesk@example.com", is_superuser=False)
    helpdesk.user_permissions.set(Permission.objects.filter(codename="view_organisation"))
    client.force_login(helpdesk)

    response = client.get("/admin/accounts/user/", **FRENCH)

    assert response.status_code == 403
    assert "Accès refusé · Contoso Équipement" in page(response)
    assert "Votre compte ne peut pas ouvrir cette page" in page(response)


def test_csrf_refusal_is_explained_in_the_visitor_language(contoso):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/login", {"identity": "alice@example.com", "password": PASSWORD}, **FRENCH)

    assert response.status_code == 403
    assert "Le formulaire a expiré · Contoso Équipement" in page(response)
    assert "CSRF" not in page(response)  # the reason is logged, not shown


@pytest.mark.urls("tests.error_urls")
def test_500_has_the_organisation_name(contoso):
    response = Client(raise_request_exception=False).get("/broken", **FRENCH)

    assert response.status_code == 500
    assert "<title>Une erreur s’est produite · Contoso Équipement</title>" in page(response)
    assert "a bug in a view" not in page(response)


def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database server to be unreachable (SQLite is a file)")
@pytest.mark.urls("tests.error_urls")
@pytest.mark.django_db(transaction=True)
def test_500_renders_without_a_name_when_the_database_is_unreachable():
    OrganisationFactory(name="Contoso Équipement")
    connections.close_all()
    settings_dict = connections["default"].settings_dict
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    settings_dict.update(HOST="127.0.0.1", PORT=str(unused_port()))  # nothing listens there
    try:
        response = Client(raise_request_exception=False).get("/broken", **FRENCH)
    finally:
        connections.close_all()
        settings_dict.update(saved)

    assert response.status_code == 500
    assert "<title>Une erreur s’est produite</title>" in page(response)
    assert "Contoso" not in page(response)
