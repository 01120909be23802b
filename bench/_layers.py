"""Where a request's Python CPU goes, by layer: a cProfile's exclusive time (tottime) summed per layer
of the stack (the database driver, Django's ORM, Django's request handling, each of our apps, ...).

A built-in function (a C call such as getattr, str.join or an lxml method) has no file of its own: its
time is split among its callers in the proportion cProfile recorded for each, so that it counts in
the layer that called it. Used by bench/_profile_checkin.py and bench/_profile_enroll.py (--layers).

cProfile adds a fixed cost to every Python call, so layers made of many small calls (Django's, the
driver's) weigh a little more here than they do unprofiled; the calls per operation, which the load
does not change, are printed beside each share.
"""
import os
from collections import defaultdict

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# (prefix of the path inside site-packages, layer), the first that matches.
_PACKAGES = [
    ("psycopg", "psycopg (the PostgreSQL driver)"),
    ("django/db/models", "Django ORM: models, queries, compilation"),
    ("django/db/backends", "Django database layer: connections, cursors, transactions"),
    ("django/db/transaction", "Django database layer: connections, cursors, transactions"),
    ("django/db/utils", "Django database layer: connections, cursors, transactions"),
    ("django/utils/connection", "Django database layer: connections, cursors, transactions"),
    ("asgiref", "Django database layer: connections, cursors, transactions"),
    ("django/template", "Django templates"),
    ("django", "Django request handling: handler, middleware, URLs, request and response, settings, signals"),
    ("axes", "Django request handling: handler, middleware, URLs, request and response, settings, signals"),
    ("lxml", "lxml (XML)"),
    ("cryptography", "cryptography (X.509, RSA)"),
    ("jwt", "PyJWT (Entra tokens)"),
]


def layer_of(filename, function):
    """The layer of a profiled function, from its file (None for a built-in)."""
    if filename == "~" or filename.startswith("<built-in"):
        return None
    if "site-packages" + os.sep in filename:
        inside = filename.split("site-packages" + os.sep, 1)[1].replace(os.sep, "/")
        for prefix, layer in _PACKAGES:
            if inside.startswith(prefix):
                return layer
        return "other libraries"
    if filename.startswith(_REPOSITORY):
        app = filename[len(_REPOSITORY):].split(os.sep, 1)[0]
        return f"ours: {app}/"
    return "Python's standard library"


def layers(stats):
    """{layer: (seconds, calls)} of a pstats.Stats: exclusive time, built-ins with their callers."""
    own = {}
    for (filename, line, function), (_primitive, calls, tottime, _cumtime, callers) in stats.stats.items():
        own[(filename, line, function)] = layer_of(filename, function)
    seconds, calls_by_layer = defaultdict(float), defaultdict(int)
    for key, (_primitive, calls, tottime, _cumtime, callers) in stats.stats.items():
        layer = own[key]
        if layer is not None:
            seconds[layer] += tottime
            calls_by_layer[layer] += calls
            continue
        # A built-in: its time split among its callers' layers, as recorded per caller.
        by_caller = [(own.get(caller) or "Python's standard library", caller_stats[2], caller_stats[1])
                     for caller, caller_stats in callers.items()]
        recorded = sum(time for _, time, _ in by_caller)
        for caller_layer, time, count in by_caller:
            seconds[caller_layer] += tottime * (time / recorded) if recorded else tottime / len(by_caller)
            calls_by_layer[caller_layer] += count
        if not by_caller:
            seconds["Python's standard library"] += tottime
            calls_by_layer["Python's standard library"] += calls
    return {layer: (seconds[layer], calls_by_layer[layer]) for layer in seconds}


def report(stats, operations, what):
    """Lines: each layer's share of the profiled time and its calls per `what` (e.g. "request")."""
    found = layers(stats)
    total = sum(seconds for seconds, _ in found.values()) or 1
    lines = [f"  Where the Python CPU goes, by layer (cProfile exclusive time; built-ins with their callers), "
             f"per {what}:"]
    for layer, (seconds, calls) in sorted(found.items(), key=lambda item: -item[1][0]):
        lines.append(f"    {seconds / total:6.1%}  {calls / operations:8,.0f} calls  {layer}")
    return lines
