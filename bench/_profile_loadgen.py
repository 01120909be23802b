"""The load generator's own CPU and Python function calls per password-less enrollment (provisioning-
package PIN, Entra token): the client side of bench/enroll.py alone, the server in other processes.

    DATABASE_URL=postgres://…/somedb python -m bench._profile_loadgen [--enrollments N] [--mode ppkg|entra]
        [--clients N] [--profile cumulative|tottime] [--lines N] [--dump FILE]

Production settings as bench/run gives its servers (DEBUG off, persistent connections, no HTTPS
redirect), the database migrated and seeded (a PIN enrollment, an Entra tenant of the bench's own),
then a gunicorn on a free 127.0.0.1 port with BENCH_WORKERS workers (default: the cores), stopped at
the end. Each enrollment is bench/enroll.py's (bench.enroll.new_simulator, then run(): probe,
Discover, the Entra terms-of-use page, GetPolicies, RST, the answer validated down to the certificate
chain) over real HTTP; client keys and Entra tokens are made before the measured spans, as there.

For each mode it prints, after a few unmeasured enrollments:
- the CPU time of this process (time.process_time: the client only, the server runs elsewhere) per
  enrollment, over N enrollments from --clients threads (default 1), as the bench's "load generator"
  column counts it; it depends on the machine's load and speed;
- the Python function calls per enrollment (cProfile over N more enrollments, one after the other in
  this thread), a figure the machine's load does not change; with --profile, the profile itself;
- the same two figures for the bench's floor of those enrollments: as many empty requests as they
  made (bench._harness.empty_requests_seconds, the discovery probe the simulator sends), per enrollment.
"""
import argparse
import cProfile
import io
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

WARM = 3


def start_server(url, port, log):
    """gunicorn serving the portal at `url` as bench/run starts it, its output in `log`."""
    from bench._harness import ROOT, wait_until_serving, workers

    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mdmportal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers()), "--timeout", "60", "--graceful-timeout", "5"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(url, server.pid, 60)
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server):
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def enroll(url, credentials, keys, mode):
    """Enroll one PC per credentials, one after the other; raise on the first failure."""
    from bench.enroll import new_simulator

    return [(who, new_simulator(url, who, key, mode).run()) for who, key in zip(credentials, keys)]


def floor(url, requests, clients):
    """(CPU seconds, Python function calls) of the load generator for the bench's floor of `requests`
    empty requests (bench._harness.empty_requests_seconds): the CPU from `clients` threads, the calls
    from one."""
    from bench._harness import empty_requests_seconds

    started = time.process_time()
    empty_requests_seconds(url, requests, clients)
    cpu = time.process_time() - started
    # cProfile sees only this thread, not the floor's pool: the calls are those of the same requests,
    # each the probe the floor sends (Simulator.probe), made here.
    from simulator import Simulator

    simulator = Simulator(url, "floor@bench.invalid", timeout=30)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(requests):
        simulator.probe()
    profiler.disable()
    return cpu, pstats.Stats(profiler).total_calls


def measure(url, mode, credentials, keys, args):
    from bench.enroll import check_recorded

    count = args.enrollments
    enroll(url, credentials[:WARM], keys[:WARM], mode)  # first requests: imports, connections, caches
    timed = credentials[WARM:WARM + count], keys[WARM:WARM + count]
    shares = [(timed[0][i::args.clients], timed[1][i::args.clients]) for i in range(args.clients)]
    started = time.process_time()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        enrolled = [pair for done in pool.map(lambda share: enroll(url, *share, mode), shares) for pair in done]
    cpu = time.process_time() - started

    profiler = cProfile.Profile(time.process_time)
    profiled = credentials[WARM + count:], keys[WARM + count:]
    profiler.enable()
    enrolled += enroll(url, *profiled, mode)
    profiler.disable()
    problems = check_recorded(enrolled, mode.method)
    if problems:
        raise SystemExit(f"{mode.label}: " + "; ".join(problems[:5]))
    stats = pstats.Stats(profiler)
    calls = stats.total_calls / count
    requests = sum(ncalls for (path, _, name), (_, ncalls, *_) in stats.stats.items()
                   if name == "_open" and path.endswith(os.path.join("simulator", "device.py")))
    print(f"{mode.label}: load generator CPU {cpu * 1000 / count:.1f} ms per enrollment ({count} enrollments "
          f"from {args.clients} client thread{'s' if args.clients > 1 else ''}); "
          f"Python function calls per enrollment: {calls:,.0f}")
    floor_cpu, floor_calls = floor(url, requests, args.clients)
    print(f"  the bench's floor for it, {requests / count:.0f} empty requests per enrollment: load generator CPU "
          f"{floor_cpu * 1000 / count:.1f} ms, Python function calls {floor_calls / count:,.0f}")
    for sort in args.profile or []:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(args.lines)
        print(out.getvalue())
    if args.dump:
        profiler.dump_stats(f"{args.dump}.{mode.profile}-{mode.method}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=40)
    parser.add_argument("--mode", choices=["ppkg", "entra"], nargs="*", default=["ppkg", "entra"])
    parser.add_argument("--clients", type=int, default=1, help="client threads of the CPU measurement")
    parser.add_argument("--profile", choices=["cumulative", "tottime"], nargs="*")
    parser.add_argument("--lines", type=int, default=45)
    parser.add_argument("--dump", help="also save the profiles to FILE.<mode> (pstats format)")
    args = parser.parse_args()
    from bench._harness import free_port, setup_in_process

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    setup_in_process("a PIN enrollment and Entra users", settings={"ENROLLMENT_URL": url, "PORTAL_URL": url})
    from bench.enroll import MODES, EntraTenant, new_keys, seed_package, set_auth_policy, switch_entra_off

    modes = {mode.method: mode for mode in MODES}
    run_id = secrets.token_hex(4)
    count = WARM + 2 * args.enrollments
    set_auth_policy("onpremise")
    switch_entra_off()
    with tempfile.TemporaryFile() as log:
        server = start_server(url, port, log)
        try:
            for name in args.mode:
                mode = modes[name]
                keys = new_keys(count)
                if mode.package:
                    measure(url, mode, seed_package(f"{run_id}-p", count), keys, args)
                    continue
                with EntraTenant(run_id) as tenant:
                    tenant.configure()
                    measure(url, mode, tenant.credentials("entra", count), keys, args)
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
