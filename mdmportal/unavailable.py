"""What a request gets while a dependency is down: a clean 503 (or the device's SOAP fault), never a 500.

PostgreSQL restarting, or the Redis behind the cache going away, raises connection errors from deep
inside any view. They are not bugs in the request, so they get one answer here rather than a stack
trace: pages a short "try again in a minute" page, the API a JSON error, devices the SOAP fault of
their protocol (enrollment.device_views.unavailable and management.device_views.unavailable, registered for its URL namespace: this module is shared
by every app and imports none). Nothing half-written is left behind: every write that
spans rows runs in a transaction, which the lost connection rolls back.

The page speaks the language the portal's pages would have used, chosen without the database (it may
be what is down): the signed-in user's language when the request had already loaded the user, as the
enrollment and invitation pages use it, else the browser's (Accept-Language, as LocaleMiddleware picks
it for the sign-in pages).
"""
import logging

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.cache import patch_vary_headers

logger = logging.getLogger(__name__)

# Connection failures only: an IntegrityError or a bad query is a bug and stays a 500.
DEPENDENCY_DOWN = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
RETRY_AFTER_SECONDS = 30

# An app's own answer for the requests of its URL namespace: function(request, exception) -> response,
# or None for the 503 page.
_responders = {}


def register_responder(namespace, responder):
    """Answer requests of the URL namespace `namespace` with `responder` while a dependency is down."""
    _responders[namespace] = responder


def is_dependency_down(exception):
    return isinstance(exception, DEPENDENCY_DOWN)


class DependencyUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_dependency_down(exception):
            return None
        logger.warning("503 for %s %s: dependency unavailable: %s: %s", request.method, request.path,
                       type(exception).__name__, str(exception).strip()[:300])
        response = None
        match = getattr(request, "resolver_match", None)
        if match is not None and match.namespace in _responders:
            response = _responders[match.namespace](request, exception)
        if response is None:
            response = unavailable_response(request)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def unavailable_response(request):
    """The 503 for people and API clients. The page is standalone: rendering base.html would read the
    session and the organisation from the database that just failed."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "The service is temporarily unavailable. Try again in a minute."},
                            status=503)
    language = page_language(request)
    with translation.override(language):
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Content-Language"] = language
    patch_vary_headers(response, ["Accept-Language", "Cookie"])
    return response


def page_language(request):
    """The user's language if this request already loaded the user (AuthenticationMiddleware caches
    it on first use; reading request.user now could query the database), else the browser's."""
    user = getattr(request, "_cached_user", None)
    language = getattr(user, "language", "") if getattr(user, "is_authenticated", False) else ""
    if language in dict(settings.LANGUAGES):
        return language
    return translation.get_language_from_request(request)
