import json
from io import StringIO

import yaml
from django.core.management import call_command
from drf_spectacular.validation import validate_schema

from tests.api_helpers import HttpsAPIClient

EXPECTED_PATHS = {
    "/api/v1/users/", "/api/v1/users/{id}/",
    "/api/v1/invitations/", "/api/v1/invitations/{id}/",
    "/api/v1/invitations/{id}/resend/", "/api/v1/invitations/{id}/revoke/",
    "/api/v1/enrollment-url/", "/api/v1/enrollment-url/regenerate/",
    "/api/v1/enrollment-url/rotations/", "/api/v1/enrollment-url/rotations/{id}/",
    "/api/v1/users/export/", "/api/v1/audit-events/", "/api/v1/audit-events/{id}/", "/api/v1/audit-events/export/",
}


def test_schema_is_valid_openapi_json(db):
    response = HttpsAPIClient().get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert EXPECTED_PATHS <= set(schema["paths"])
    # django-rest-knox's token, named by drf-spectacular's own extension for it.
    assert schema["components"]["securitySchemes"]["knoxApiToken"]["name"] == "Authorization"


def test_schema_is_served_as_yaml_by_default(db):
    response = HttpsAPIClient().get("/api/v1/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert EXPECTED_PATHS <= set(schema["paths"])


def test_schema_documents_the_409_of_resend_and_revoke(db):
    schema = json.loads(HttpsAPIClient().get("/api/v1/schema/", {"format": "json"}).content)

    for action in ("resend", "revoke"):
        assert "409" in schema["paths"][f"/api/v1/invitations/{{id}}/{action}/"]["post"]["responses"]


def test_schema_generates_without_warnings(db):
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO())
