"""A console administrator's browser for the workloads: signs in over HTTP like a person (the login
form, its CSRF token, PBKDF2 on the server) and then GETs and POSTs pages with that session.

Redirects are returned, not followed, so a workload sees exactly what one request did.
"""
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from bench._harness import BenchError

CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def create_admin(email, password):
    """A superuser to sign in with (the console's full administrator)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.filter(email=email).delete()
    return User.objects.create_superuser(email, password)


class Console:
    def __init__(self, base_url, timeout=120):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _KeepRedirects())

    def request(self, path, fields=None):
        """(status, headers, body, seconds) of a GET, or of a POST of `fields` (a list of pairs)."""
        url = self.base + path
        data = None
        headers = {"User-Agent": "mdmportal-bench"}
        if fields is not None:
            data = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = url
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
        started = time.perf_counter()
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                status, response_headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, body = error.code, error.headers, error.read()
        return status, response_headers, body, time.perf_counter() - started

    def get(self, path, expect=200):
        status, headers, body, seconds = self.request(path)
        if status != expect:
            raise BenchError(f"GET {path} answered {status}, expected {expect}")
        return body, seconds

    def csrf_token(self, page):
        match = CSRF_FIELD.search(page)
        if match is None:
            raise BenchError("the page has no CSRF token")
        return match.group(1).decode()

    def sign_in(self, email, password):
        page, _ = self.get("/admin/login/?next=/admin/")
        status, headers, body, _ = self.request("/admin/login/?next=/admin/", [
            ("csrfmiddlewaretoken", self.csrf_token(page)), ("username", email), ("password", password),
            ("next", "/admin/")])
        if status != 302 or not headers.get("Location", "").endswith("/admin/"):
            raise BenchError(f"signing in to the console as {email} answered {status}, not a redirect to /admin/")
