"""A NUL character in a query parameter is refused with a 400 before any view sees it.

PostgreSQL stores and compares no NUL in text ("PostgreSQL text fields cannot contain NUL (0x00)
bytes"), so a filter of the console or the API given one fails with a DataError: a 500 for what is
only bad input. No page or API takes a NUL in its query on purpose; refusing it here, once, covers
every filter, search and export, present and future (OWASP Input Validation Cheat Sheet: reject
what cannot be valid as early as possible).

The device protocol endpoints are left to answer in their own protocol: the OMA-DM, discovery and
enrollment services read no query parameter, and the terms-of-use page answers Windows at its
redirect_uri (its audit row takes the NUL out, accounts.models.without_nul).
"""
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

# Answered in the device's own protocol, never by this page (enrollment/device_urls.py, management/device_urls.py).
PROTOCOL_VIEWS = {"enrollment:autodiscovery", "enrollment:discovery", "enrollment:policy", "enrollment:enrollment",
                  "management:management", "enrollment:terms"}


def has_nul(request):
    query = request.META.get("QUERY_STRING", "")
    if "%00" not in query and "\x00" not in query:
        return False  # the common case: one substring search each, nothing decoded
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())


def is_protocol_endpoint(request):
    try:
        return resolve(request.path_info).view_name in PROTOCOL_VIEWS
    except Resolver404:
        return False


class RefuseNulInQueryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if has_nul(request) and not is_protocol_endpoint(request):
            message = _("A query parameter contains a NUL character, which is not allowed.")
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
