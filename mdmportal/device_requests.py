"""Device requests skip the middleware that only people's pages use.

Enrolled Windows devices POST SyncML to the OMA-DM endpoint at every check-in, and Windows first
probes the keyless discovery address; neither sends a cookie, a CSRF token, a password or a language
that changes the answer. The session, locale, authentication and messages middleware still do work
on every request (a session store, the language negotiated from Accept-Language and activated, a lazy
user, a message store, Vary and Content-Language headers), so on those two addresses they hand the
request straight on. Everything else keeps them all, the enrollment services with passwords
(Policy.svc, Enrollment.svc) and the sign-in pages included.

The rest runs for devices as for everyone: the trusted-proxy headers (mdmportal/proxies.py),
SecurityMiddleware (the HTTPS redirect), CommonMiddleware (the Host check), CSRF (the views are
exempt), X-Frame-Options, django-axes (it only reads a flag after the view) and the 503 on a
dependency outage (mdmportal/unavailable.py); `manage.py check --deploy` looks for the CSRF,
frame-options and axes middleware by name.
"""
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.middleware.locale import LocaleMiddleware as _LocaleMiddleware
from django.utils import translation

DISCOVERY_PATH = "/enrollmentserver/discovery.svc"


def is_device_request(request):
    """A request to the OMA-DM endpoint or the keyless discovery address (paths in any letter case,
    as their URL patterns match them)."""
    path = request.path_info.lower()
    return path == DISCOVERY_PATH or path == settings.ENROLLMENT_MANAGEMENT_PATH.lower()


class BrowserOnly:
    """Mixin for a middleware class: device requests pass it untouched."""

    def __call__(self, request):
        if is_device_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, _SessionMiddleware):
    pass


class LocaleMiddleware(BrowserOnly, _LocaleMiddleware):
    def __call__(self, request):
        if is_device_request(request):
            # No negotiation, but never the language a page left active in this worker: the default.
            translation.activate(settings.LANGUAGE_CODE)
            return self.get_response(request)
        return _LocaleMiddleware.__call__(self, request)


class AuthenticationMiddleware(BrowserOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(BrowserOnly, _MessageMiddleware):
    pass
