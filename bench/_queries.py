"""SQL queries and server time per request, for bench/run only: the SQL queries per OMA-DM session and
per enrollment, which must stay a fixed count.

The bench servers run with BENCH_QUERY_LOG set; bench/settings.py then puts this middleware first, so it
sees every query of the request: the other middleware (session, user), the view and the template
rendering (Django renders a TemplateResponse before the middleware gets it back). For each request it
appends one line to that file:

    <queries> <server milliseconds> <METHOD> <path>

O_APPEND makes the short writes of several gunicorn workers safe to interleave. The workloads read the
lines of the paths they called (`requests_since`).
"""
import os
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection


class QueryCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        started = time.perf_counter()
        with connection.execute_wrapper(count):
            response = self.get_response(request)
        milliseconds = (time.perf_counter() - started) * 1000
        line = f"{queries} {milliseconds:.3f} {request.method} {request.path}\n".encode("utf-8", "replace")
        descriptor = os.open(settings.BENCH_QUERY_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
        return response


@dataclass
class Request:
    queries: int
    milliseconds: float
    method: str
    path: str


def log_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def requests_since(path, offset, path_prefix=""):
    """The requests logged after byte `offset` (a `log_size` taken earlier) whose path starts with
    `path_prefix`."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    requests = []
    for line in lines:
        queries, milliseconds, method, request_path = line.split(" ", 3)
        if request_path.startswith(path_prefix):
            requests.append(Request(int(queries), float(milliseconds), method, request_path))
    return requests
