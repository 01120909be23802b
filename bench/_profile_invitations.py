"""The "Send invitation" console action on every user of a search (`select_across`), in this process:
Django's test client signed in as a superuser, production settings as bench/run gives its servers.

    DATABASE_URL=postgres://…/somedb python -m bench._profile_invitations [--users N] [--profile cumulative|tottime]

Seeds N users under a fresh domain, then times the POST the browser makes after "Select all" and the
confirmation page (its
wall time, CPU time, the CPU time of PostgreSQL's backends on the database and SQL statements, each
printed with its duration; the COMMIT, where PostgreSQL checks the deferred foreign keys, is not a
statement of Django's and shows only in the wall time and PostgreSQL's CPU). The Celery tasks it queues go
to the broker (REDIS_URL) on a queue of their own that nothing reads (CELERY_QUEUE, emptied after),
so the figure includes publishing them but no email is sent. With --profile, a cProfile of the POST.
"""
import argparse
import cProfile
import io
import os
import pstats
import secrets
import sys
import time

SETTINGS = {"ALLOWED_HOSTS": "127.0.0.1,testserver", "CELERY_QUEUE": "mdmportal-bench-profile"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--profile", choices=["cumulative", "tottime"], nargs="*")
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args()
    from bench._harness import setup_in_process

    setup_in_process("users", settings=SETTINGS, ca=False)
    from django.db import connection
    from django.test import Client

    from bench._console import create_admin
    from bench._harness import ServerCpu
    from bench.invitations import seed_users
    from mdmportal.celery import app

    run_id = secrets.token_hex(4)
    domain = f"inv-{run_id}.bench.invalid"
    seed_users(domain, args.users)
    admin = create_admin(f"admin-{run_id}@bench.invalid", secrets.token_urlsafe(16))
    client = Client()
    client.force_login(admin)
    listing = f"/admin/accounts/user/?q={domain}"
    client.get(listing)  # warm: the list's first request loads what a worker keeps

    statements = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, sql))

    profiler = cProfile.Profile() if args.profile else None
    meter = ServerCpu(in_process=True)  # this process's backend counts as PostgreSQL
    wall, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(timed):
        if profiler:
            profiler.enable()
        # "post": the confirmed action, as its confirmation page (the counts before sending) posts it.
        response = client.post(listing, {"action": "send_invitations", "select_across": "1", "index": "0",
                                         "_selected_action": "0", "post": "yes"})
        if profiler:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    postgresql = meter.stop().get("postgresql", 0.0)
    if response.status_code != 302:
        sys.exit(f"the action answered {response.status_code}")
    with app.connection_for_write() as broker:
        app.amqp.queues[os.environ["CELERY_QUEUE"]].bind(broker).purge()
    print(f"{args.users} users: the action took {wall * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU in this process, "
          f"{postgresql * 1000:.0f} ms in PostgreSQL; load average {os.getloadavg()[0]:.2f}), "
          f"{len(statements)} SQL statements, {sum(s for s, _ in statements) * 1000:.0f} ms in them:")
    for seconds, sql in statements:
        print(f"  {seconds * 1000:7.1f} ms  {' '.join(sql.split())[:150]}")
    if profiler:
        for sort in args.profile:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(args.lines)
            print(out.getvalue())


if __name__ == "__main__":
    main()
