"""A small Microsoft Graph client for the Autopilot connector: an app-only token by the OAuth 2.0 client
credentials grant (RFC 6749 §4.4, Microsoft identity platform v2.0 endpoint), cached until shortly
before it expires, and JSON requests that sort Graph's answers into what a task should retry and
what it should report.

- 401 from Graph: the token is dropped, a new one fetched and the request sent once more;
- 429 (throttling) and 503 carry Retry-After (Graph's throttling guidance); 500/502/503/504 and network
  failures are transient: both raise `Retry` with the delay to wait;
- any other 4xx is permanent: `GraphError` with Graph's own error code and message.

The stdlib's urllib is enough for a handful of JSON calls, sent through mdmportal.outbound: no
redirect to another origin is followed (the token and the client secret stay with Graph and its
token endpoint), answers are read up to GRAPH_MAX_RESPONSE_BYTES, and every wait is bounded. The
client secret and tokens are never logged, and any message shown to people has the secret scrubbed
out.
"""
import hashlib
import http.client
import json
import logging
import threading
import time
from typing import NamedTuple
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

from mdmportal import outbound

from .sealing import SealError

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
# Renew a token this long before Microsoft says it expires: a request must not leave with a token
# that dies on the way.
TOKEN_MARGIN_SECONDS = 300
DEFAULT_RETRY_AFTER = 30
MAX_RETRY_AFTER = 3600
TRANSIENT_STATUSES = {500, 502, 503, 504}

class _CachedToken(NamedTuple):
    token: str
    renew_at: float  # time.monotonic() after which a new token is fetched


_tokens = {}  # Client._cache_key() -> _CachedToken
_tokens_lock = threading.Lock()


class GraphError(Exception):
    """Graph (or the token endpoint) refused the request for good. `status` is the HTTP status (None
    when no answer came), `code` Graph's error code, `message` its message."""

    def __init__(self, message, *, status=None, code=""):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class AuthError(GraphError):
    """No token: wrong tenant, client id or secret, or the secret has expired."""


class ConnectorDisabled(GraphError):
    """The connector is off (or not configured): nothing is sent."""


class Retry(Exception):
    """Throttled (429) or a transient failure: try again after `retry_after` seconds."""

    def __init__(self, message, *, retry_after=None, status=None):
        super().__init__(message)
        self.message, self.retry_after, self.status = message, retry_after, status


class Client:
    """Requests to Graph with the connector's credentials. Paths start with the version ("/v1.0/...",
    "/beta/...")."""

    def __init__(self, connector, *, require_enabled=True):
        if require_enabled and not connector.enabled:
            raise ConnectorDisabled("The Microsoft Graph connector is turned off.")
        self.connector = connector
        self.base = connector.graph_base_url.rstrip("/")
        if not (connector.tenant and connector.client_id and connector.has_client_secret):
            raise AuthError("Give the tenant, the client id and the client secret first.")
        try:
            self._secret = connector.client_secret()
        except SealError as exc:
            raise AuthError(str(exc)) from None

    # --- the token ----------------------------------------------------------------------------------

    def _cache_key(self):
        secret_digest = hashlib.sha256(self._secret.encode()).hexdigest()
        return (self.connector.token_url, self.connector.client_id, self.connector.scope, secret_digest)

    def token(self):
        key = self._cache_key()
        with _tokens_lock:
            cached = _tokens.get(key)
        if cached and cached.renew_at > time.monotonic():
            return cached.token
        token, lifetime = self._fetch_token()
        with _tokens_lock:
            _tokens[key] = _CachedToken(token, time.monotonic() + lifetime - TOKEN_MARGIN_SECONDS)
        return token

    def forget_token(self):
        with _tokens_lock:
            _tokens.pop(self._cache_key(), None)

    def _fetch_token(self):
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_id": self.connector.client_id,
            "client_secret": self._secret,
            "scope": self.connector.scope,
        }).encode()
        request = urllib.request.Request(self.connector.token_url, data=form, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        status, headers, body = self._send(request)
        if status in TRANSIENT_STATUSES or status == 429:
            raise Retry(f"The token endpoint answered {status}.", retry_after=_retry_after(headers), status=status)
        data = _json(body)
        if not isinstance(data, dict):
            data = {}
        if status != 200 or not data.get("access_token"):
            # RFC 6749 §5.2: {"error": "invalid_client", "error_description": "AADSTS7000215: ..."}
            detail = data.get("error_description") or data.get("error") or f"HTTP {status}"
            message = self._scrub(f"No token from {self.connector.token_url}: {detail}")
            logger.warning("Graph token request refused (HTTP %s)", status)
            raise AuthError(message, status=status, code=str(data.get("error", "")))
        try:
            lifetime = int(data.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0
        logger.info("Graph token obtained for client %s (valid %s s)", self.connector.client_id, lifetime)
        return data["access_token"], lifetime

    # --- requests -----------------------------------------------------------------------------------

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def patch(self, path, body):
        return self.request("PATCH", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

    def url(self, path):
        """Absolute URL for a path; absolute URLs (Graph's @odata.nextLink) must stay on the Graph host,
        where the token is meant to go."""
        if path.startswith("/"):
            return self.base + path
        if urllib.parse.urlsplit(path)[:2] != urllib.parse.urlsplit(self.base)[:2]:
            raise GraphError(f"Graph pointed to another host ({urllib.parse.urlsplit(path).netloc}); not following.")
        return path

    def request(self, method, path, body=None):
        """Graph's JSON answer (None for an empty one); raises Retry, GraphError or AuthError."""
        url = self.url(path)
        for attempt in (1, 2):
            status, headers, raw = self._send(self._graph_request(method, url, body))
            if status == 401 and attempt == 1:
                # The token was revoked or expired early: one fresh token, one more try.
                logger.info("Graph answered 401 to %s %s; renewing the token once", method, _path(url))
                self.forget_token()
                continue
            break
        logger.info("Graph %s %s -> %s", method, _path(url), status)
        if 200 <= status < 300:
            return _json(raw) if raw else None
        error = _json(raw)
        error = error.get("error", {}) if isinstance(error, dict) else {}
        code = error.get("code", "") if isinstance(error, dict) else ""
        message = error.get("message", "") if isinstance(error, dict) else ""
        if status == 429 or status in TRANSIENT_STATUSES:
            raise Retry(f"Graph answered {status} to {method} {_path(url)}" + (f": {message}" if message else ""),
                        retry_after=_retry_after(headers), status=status)
        text = self._scrub(message or f"HTTP {status}")
        if status == 401:
            raise AuthError(f"Graph refused the token twice: {text}", status=status, code=code)
        raise GraphError(text, status=status, code=code)

    def _graph_request(self, method, url, body):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(url, data=data, method=method, headers=headers)

    def _send(self, request):
        """(status, headers, body bytes); network failures and slow answers become Retry; a redirect to
        another origin or an answer over GRAPH_MAX_RESPONSE_BYTES is a GraphError."""
        host = urllib.parse.urlsplit(request.full_url).netloc
        try:
            return outbound.fetch(request, timeout=TIMEOUT_SECONDS, max_bytes=settings.GRAPH_MAX_RESPONSE_BYTES)
        except outbound.RedirectRefused as exc:
            logger.warning("Graph request to %s redirected to another origin (%s); not followed", host,
                           outbound.netloc(exc.location))
            raise GraphError(f"{host} answered with a redirect to {outbound.netloc(exc.location)}, another host; "
                             "not followed, so the token stays with Graph. Check the Graph and token base URLs.",
                             code="redirect") from None
        except outbound.TooLarge as exc:
            raise GraphError(f"The answer from {host} is larger than {outbound.size_text(exc.max_bytes)} "
                             "(GRAPH_MAX_RESPONSE_BYTES); it was not read.", code="tooLarge") from None
        except outbound.TooSlow as exc:
            raise Retry(str(exc)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise Retry(f"Cannot reach {host}: {reason}") from None

    def _scrub(self, text):
        return text.replace(self._secret, "[client secret]") if self._secret else text


def _json(raw):
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def _retry_after(headers):
    """Retry-After in seconds (RFC 9110 §10.2.3; Graph sends delta-seconds), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return max(0, min(seconds, MAX_RETRY_AFTER))


def _path(url):
    return urllib.parse.urlsplit(url).path


def retry_delay(exc, retries):
    """Seconds a task waits before trying again: Graph's Retry-After when it gave one, otherwise
    exponential backoff from 15 s, capped at 15 minutes."""
    if exc.retry_after is not None:
        return exc.retry_after
    return min(15 * 2 ** retries, 900)
