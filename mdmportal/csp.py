"""A Content-Security-Policy on every page: the portal, the sign-in and terms-of-use pages Windows
shows, the console and the 503 page.

Django 5.2 has no CSP of its own (6.0 does, with the same shape as this: a `SECURE_CSP` dict of
directive -> sources, a nonce placeholder and a `csp_nonce` template variable), so this is a small
middleware rather than a dependency; moving to Django 6.0 means swapping the middleware and the
context processor for Django's, nothing else. Pages load their scripts and styles from /static/; an
inline <script> or <style> needs `nonce="{{ csp_nonce }}"`, and style="" or on…="" attributes are
refused, so there are none in the templates (tests/test_csp.py looks for them).

The nonce is made only when a template uses it, and the header names it only then. Only HTML
responses get the header: it means nothing to the SOAP, SyncML and JSON clients.
"""
import secrets

from django.conf import settings

HEADER = "Content-Security-Policy"


class CSP:
    """Source keywords, as django.utils.csp.CSP names them in Django 6.0."""

    NONE = "'none'"
    SELF = "'self'"
    NONCE = "<CSP_NONCE_SENTINEL>"  # replaced by 'nonce-…' when the page used its nonce


class LazyNonce:
    """The request's nonce, drawn the first time a template prints it."""

    def __init__(self):
        self.value = None

    def __str__(self):
        if self.value is None:
            self.value = secrets.token_urlsafe(16)
        return self.value

    def __bool__(self):
        return True


def build_policy(config, nonce):
    directives = []
    for directive, sources in config.items():
        values = []
        for source in sources:
            if source == CSP.NONCE:
                if nonce is not None and nonce.value is not None:
                    values.append(f"'nonce-{nonce.value}'")
            else:
                values.append(source)
        directives.append(" ".join([directive, *values]))
    return "; ".join(directives)


def allow(response, directive, *sources):
    """Let this response's policy allow more sources for one directive: the sign-in page posts its
    token to the broker's ms-app: address, the terms-of-use page answers Windows' redirect URI."""
    config = dict(getattr(response, "_csp_config", settings.SECURE_CSP))
    config[directive] = [*config.get(directive, []), *sources]
    response._csp_config = config
    return response


def nonce(request):
    """Context processor: `{{ csp_nonce }}` for an inline script or style."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.csp_nonce = LazyNonce()
        response = self.get_response(request)
        if HEADER in response or not response.get("Content-Type", "").startswith("text/html"):
            return response
        # Django's technical 404/500 pages (DEBUG only) are all inline script and style.
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        config = getattr(response, "_csp_config", settings.SECURE_CSP)
        if config:
            response[HEADER] = build_policy(config, request.csp_nonce)
        return response
