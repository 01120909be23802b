"""The error pages of every address (400, 403, 404, 500 and the CSRF refusal, settings.CSRF_FAILURE_VIEW):
in the visitor's language (LocaleMiddleware has chosen it by then) and under the organisation's name,
like the portal's own pages, instead of Django's English defaults.

They render without the request's context processors: a 500 may come from the database itself, and the
session, the user and the organisation all live there. The organisation's name is read in a try of its
own, and a page with no name is what a broken database gets."""
import logging

from django.http import (HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotFound,
                         HttpResponseServerError)
from django.template.loader import render_to_string

from accounts.models import Organisation

logger = logging.getLogger(__name__)


def organisation_name():
    try:
        return Organisation.objects.filter(pk=1).values_list("name", flat=True).first()
    except Exception:  # noqa: BLE001 - an error page must render whatever broke (the database: no name)
        logger.info("error page without the organisation's name (database unavailable)")
        return None


def _page(template, response_class):
    return response_class(render_to_string(template, {"organisation_name": organisation_name()}))


def bad_request(request, exception=None):
    return _page("errors/400.html", HttpResponseBadRequest)


def permission_denied(request, exception=None):
    return _page("errors/403.html", HttpResponseForbidden)


def page_not_found(request, exception=None):
    return _page("errors/404.html", HttpResponseNotFound)


def server_error(request):
    return _page("errors/500.html", HttpResponseServerError)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a form sent without its token (a page left open past the token's rotation,
    cookies blocked, another site posting). The reason stays in the log, not on the page."""
    logger.warning("CSRF refusal for %s: %s", request.path, reason)
    return _page("errors/403_csrf.html", HttpResponseForbidden)
