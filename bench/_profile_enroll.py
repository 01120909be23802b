"""CPU and SQL per password-less enrollment RST (provisioning-package PIN, Entra token), in this
process: no gunicorn, no client threads, no network.

    DATABASE_URL=postgres://…/somedb python -m bench._profile_enroll [--enrollments N] [--mode ppkg|entra]
        [--profile cumulative|tottime] [--layers] [--request KIND] [--dump FILE]

Production settings as bench/run gives its servers (DEBUG off, persistent connections, no HTTPS
redirect, Django's PBKDF2 hasher). Each enrollment is the simulator's (probe, Discover, the Entra
terms-of-use page, GetPolicies, RST, the answer validated down to the certificate chain), with its
requests handed to Django's WSGI handler exactly as gunicorn calls it. Client keys and Entra tokens are
made before the measured span. Every request is measured by kind: its CPU time (time.process_time) and
its SQL statements (connection.execute_wrapper); with --profile, each kind is also profiled (cProfile),
its Python function calls per enrollment are printed, and the profile of one kind (--request, "RST POST"
unless told) is shown; with --layers, the time of every request of an enrollment by layer of the stack
(bench/_layers.py). The database's own CPU is not in the figure (a separate process).
"""
import argparse
import cProfile
import email.message
import io
import pstats
import secrets
import statistics
import sys
import time
import urllib.parse
from collections import defaultdict

SETTINGS = {"ENROLLMENT_URL": "http://127.0.0.1:8000", "PORTAL_URL": "http://127.0.0.1:8000"}
RST_PATH = "/enrollment.svc"


class Meter:
    """CPU seconds and SQL statements per kind of request, and (optionally) a profile of the RSTs."""

    def __init__(self, profile, show_sql=0):
        self.show_sql, self.kind, self.profile = show_sql, "", bool(profile)
        self.reset()

    def reset(self):
        self.cpu, self.queries = defaultdict(list), defaultdict(list)
        self.profilers = defaultdict(lambda: cProfile.Profile(time.process_time))

    def count(self, execute, sql, params, many, context):
        self.current += 1
        if self.show_sql and self.kind == "RST POST":
            print(f"    SQL {self.current}: {sql[:self.show_sql]}")
        return execute(sql, params, many, context)


def kind_of(method, path):
    path = path.lower()
    for suffix, name in (("/discovery.svc", "discovery"), ("/policy.svc", "policies"), (RST_PATH, "RST"),
                         ("/termsofuse", "terms")):
        if path.endswith(suffix):
            return f"{name} {method}"
    return f"{method} {path}"


def in_process_simulator(application, meter):
    from simulator import Simulator

    class InProcess(Simulator):
        """The simulator with its HTTP requests served by the WSGI handler in this process."""

        def _open(self, opener, request, check, *, redirect_ok=False):
            from django.db import connection

            url = urllib.parse.urlsplit(request.full_url)
            body = request.data or b""
            environ = {
                "REQUEST_METHOD": request.get_method(), "PATH_INFO": urllib.parse.unquote(url.path), "SCRIPT_NAME": "",
                "QUERY_STRING": url.query, "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000",
                "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
                "wsgi.run_once": False, "wsgi.version": (1, 0),
            }
            for name, value in request.header_items():
                key = name.upper().replace("-", "_")
                environ["CONTENT_TYPE" if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
            answered, kind = [], kind_of(request.get_method(), url.path)
            profiler = meter.profilers[kind] if meter.profile else None
            meter.current, meter.kind = 0, kind
            with connection.execute_wrapper(meter.count):
                if profiler:
                    profiler.enable()
                started = time.process_time()
                result = application(environ,
                                     lambda status, headers, exc_info=None: answered.append((status, headers)))
                content = b"".join(result)
                result.close()
                cpu = time.process_time() - started
                if profiler:
                    profiler.disable()
            meter.cpu[kind].append(cpu)
            meter.queries[kind].append(meter.current)
            status, headers = answered[0]
            message = email.message.Message()
            for name, value in headers:
                message[name] = value
            return int(status.split()[0]), message, content

    return InProcess


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=40)
    parser.add_argument("--mode", choices=["ppkg", "entra"], nargs="*", default=["ppkg", "entra"])
    parser.add_argument("--profile", choices=["cumulative", "tottime"], nargs="*")
    parser.add_argument("--layers", action="store_true",
                        help="profile, and print the share of each layer of the stack (bench/_layers.py)")
    parser.add_argument("--request", default="RST POST", help='the kind of request whose profile is shown, '
                        'as the table names it ("discovery POST", "policies POST", "RST POST", …)')
    parser.add_argument("--lines", type=int, default=45)
    parser.add_argument("--sql", type=int, default=0, metavar="CHARACTERS",
                        help="print the RSTs' SQL statements, cut to this length")
    parser.add_argument("--dump", help="also save the profile to this file (pstats format)")
    args = parser.parse_args()
    from bench._harness import setup_in_process

    setup_in_process("users", settings=SETTINGS)
    from django.core.wsgi import get_wsgi_application

    from bench.enroll import EntraTenant, new_keys, seed_package, set_auth_policy, switch_entra_off

    application = get_wsgi_application()
    run_id = secrets.token_hex(4)
    set_auth_policy("onpremise")
    switch_entra_off()
    warm = 3
    for mode in args.mode:
        meter = Meter(args.profile or args.layers, args.sql)
        simulator_class = in_process_simulator(application, meter)
        keys = new_keys(args.enrollments + warm)
        url = SETTINGS["ENROLLMENT_URL"]
        if mode == "ppkg":
            credentials = seed_package(f"{run_id}-p", args.enrollments + warm)
            simulators = [simulator_class(url, who.name, who.secret, private_key=key, provisioning_package=True)
                          for who, key in zip(credentials, keys)]
            run_all(simulators, meter, warm, mode, args)
        else:
            with EntraTenant(run_id) as tenant:
                tenant.configure()
                credentials = tenant.credentials("entra", args.enrollments + warm)
                terms_url = url + "/EnrollmentServer/TermsOfUse"
                simulators = [simulator_class(url, None, entra_token=who.secret, terms_url=terms_url, private_key=key)
                              for who, key in zip(credentials, keys)]
                run_all(simulators, meter, warm, mode, args)


def run_all(simulators, meter, warm, mode, args):
    profile, meter.profile = meter.profile, False  # the warm-up (first requests, caches, connections) is not profiled
    for simulator in simulators[:warm]:
        simulator.run()
    meter.reset()
    meter.profile = profile
    started = time.perf_counter()
    for simulator in simulators[warm:]:
        simulator.run()
    wall = time.perf_counter() - started
    count = len(simulators) - warm
    total = sum(sum(times) for times in meter.cpu.values()) / count
    print(f"{mode}: {count} enrollments, server CPU per request (this process only; profiled: "
          f"{'yes' if profile else 'no'}):")
    for kind, times in meter.cpu.items():
        queries = meter.queries[kind]
        calls = (f", {pstats.Stats(meter.profilers[kind]).total_calls / len(times):,.0f} Python calls"
                 if profile else "")
        print(f"  {kind:16} ×{len(times) / count:.0f}  median {statistics.median(times) * 1000:6.2f} ms, "
              f"min {min(times) * 1000:6.2f} ms  SQL {min(queries)}-{max(queries)}{calls}")
    print(f"  all requests: {total * 1000:.2f} ms of server CPU per enrollment; whole enrollment "
          f"{wall / count * 1000:.1f} ms (client and server in this process)")
    if profile:
        profiler = meter.profilers[args.request]
        calls = sum(pstats.Stats(p).total_calls for p in meter.profilers.values())
        print(f"  Python function calls per enrollment, all requests (a figure the machine's load does not "
              f"change): {calls / count:,.0f}; the profile below: {args.request}")
        if args.layers:
            from bench._layers import report

            every = pstats.Stats(*meter.profilers.values())
            print("\n".join(report(every, count, "enrollment (all its requests)")))
        for sort in args.profile or ():
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(args.lines)
            print(out.getvalue())
        if args.dump:
            profiler.dump_stats(f"{args.dump}.{mode}")


if __name__ == "__main__":
    main()
