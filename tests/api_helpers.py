"""Helpers shared by the API tests: real tokens made by `create_api_token` and clients using them."""
from io import StringIO

from django.core.management import call_command
from rest_framework.test import APIClient



def make_token(user, *, rotate=False):
    out = StringIO()
    call_command("create_api_token", user.email, *(["--rotate"] if rotate else []), stdout=out)
    return out.getvalue().strip()


class HttpsAPIClient(APIClient):
    """Speaks https like real API clients: outside DEBUG the portal redirects http to https."""

    def generic(self, method, path, data="", content_type="application/octet-stream", secure=True, **extra):
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def client_with_token(key):
    client = HttpsAPIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client

