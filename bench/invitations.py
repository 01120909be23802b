"""Workload: 10,000 invitations from one console action (benchmark).

BENCH_INVITATIONS users are seeded (bulk). An administrator signs in to the console over HTTP, lists
them (a search on their address, as one would), ticks "Select all" and runs "Send invitations": the
POST that Django admin makes with `select_across=1`. The Celery worker bench/run started (production
prefork pool, BENCH_WORKERS processes) then sends every email through SMTP to a local aiosmtpd
server that this workload runs on 127.0.0.1:BENCH_SMTP_PORT. It reports:

- the time for the action to return (target < 1 s), with the SQL queries it made;
- the time from the click until the last email reached the SMTP server (target < 60 s). The wait is
  bounded by BENCH_INVITATION_WAIT seconds (default 150); when emails are still missing then, the row
  gives the rate reached and the time it projects, as a gap.

Every email must arrive once, to its user: a duplicate or a stray recipient fails the workload.
"""
import logging
import os
import re
import sys
import threading
import time
from collections import Counter

from bench._console import Console, create_admin
from bench._harness import BenchError, ServerCpu, log, report, server_url, setup_django

COUNT = int(os.environ.get("BENCH_INVITATIONS") or 10_000)
WAIT = float(os.environ.get("BENCH_INVITATION_WAIT") or 150)
ACTION_TARGET, DELIVERY_TARGET = 1.0, 60.0
PASSWORD = "Bench-console-password-5d1c"
CHANGELIST = "/admin/accounts/user/"
SELECTED = re.compile(rb'name="_selected_action" value="(\d+)"')


class Sink:
    """aiosmtpd handler: counts the messages per recipient of this run and when the last one came."""

    def __init__(self, domain):
        self.domain = domain
        self.lock = threading.Lock()
        self.received = Counter()
        self.strays = 0
        self.last_at = None

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for recipient in envelope.rcpt_tos:
                if recipient.lower().endswith("@" + self.domain):
                    self.received[recipient.lower()] += 1
                else:
                    self.strays += 1
            self.last_at = time.perf_counter()
        return "250 Message accepted for delivery"

    def count(self):
        with self.lock:
            return len(self.received)


def seed_users(domain, count):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(email=f"user{i:05d}@{domain}", display_name=f"Bench user {i}")
                              for i in range(count)], batch_size=2000)


def check_delivery(domain, sink):
    """Every user got exactly one email and every email row is marked sent."""
    from invitations.models import InvitationEmail

    problems = []
    duplicates = [address for address, times in sink.received.items() if times > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} users got their invitation more than once, e.g. {duplicates[0]}")
    if sink.strays:
        problems.append(f"{sink.strays} emails went to addresses outside this run")
    not_sent = InvitationEmail.objects.filter(invitation__user__email__endswith="@" + domain).exclude(
        status=InvitationEmail.Status.SENT).count()
    if not_sent:
        problems.append(f"{not_sent} invitation emails are not marked sent")
    return problems


def main():
    setup_django()
    from aiosmtpd.controller import Controller

    from bench._queries import log_size, requests_since

    port = int(os.environ.get("BENCH_SMTP_PORT") or 0)
    query_log = os.environ.get("BENCH_QUERY_LOG_ONPREMISE", "")
    if not port or not query_log:
        raise BenchError("BENCH_SMTP_PORT or BENCH_QUERY_LOG_ONPREMISE is not set: run this through bench/run")
    url = server_url("onpremise")
    run_id = os.urandom(4).hex()
    domain = f"inv-{run_id}.bench.invalid"
    seed_users(domain, COUNT)
    admin_email = f"admin-{run_id}@bench.invalid"
    create_admin(admin_email, PASSWORD)

    sink = Sink(domain)
    # aiosmtpd logs every SMTP command at INFO (seven lines an email): 70,000 lines written by this
    # process would take CPU from the worker being measured.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        console = Console(url)
        console.sign_in(admin_email, PASSWORD)
        listing = f"{CHANGELIST}?q={domain}"
        page, _ = console.get(listing)
        if f"{COUNT:,}".encode() not in page and str(COUNT).encode() not in page:
            raise BenchError(f"the user list searched for {domain} does not show {COUNT} users")
        offset = log_size(query_log)
        action_meter, delivery_meter = ServerCpu(), ServerCpu()
        started = time.perf_counter()
        # What the browser posts after "Select all": the page's ticked boxes plus select_across; with
        # "post" as the action's confirmation page (the counts before sending) posts it.
        ticked = [("_selected_action", pk.decode()) for pk in SELECTED.findall(page)]
        status, headers, _, action_seconds = console.request(listing, [
            ("csrfmiddlewaretoken", console.csrf_token(page)), ("action", "send_invitations"),
            ("select_across", "1"), ("index", "0"), ("post", "yes"), *ticked])
        if status != 302:
            raise BenchError(f"the send_invitations action answered {status}, not a redirect back to the list")
        action_cpu = action_meter.stop()  # the Celery worker's first sends are in it too
        (action,) = [r for r in requests_since(query_log, offset, CHANGELIST) if r.method == "POST"]
        log(f"invitations: action returned in {action_seconds:.2f} s ({action.milliseconds:.0f} ms in the server, "
            f"{action.queries} SQL queries); waiting for {COUNT} emails")

        deadline = started + WAIT
        while sink.count() < COUNT and time.perf_counter() < deadline:
            time.sleep(0.2)
        received = sink.count()
        elapsed = (sink.last_at or time.perf_counter()) - started
        delivery_cpu = delivery_meter.stop()
    finally:
        controller.stop()

    report(f"invitations from one console action ({COUNT:,} users): action returns",
           f"{action_seconds:.2f} s ({action.queries} SQL)", f"< {ACTION_TARGET:g} s", "",
           "met" if action_seconds < ACTION_TARGET else f"gap: {action_seconds / ACTION_TARGET:.1f}× the target")
    report(f"invitations ({COUNT:,}): CPU of the action (its {action_seconds:.2f} s)",
           action_cpu.text(1, "action"), "", "", "")
    report(f"invitations ({COUNT:,}): CPU per email sent, action to last email",
           delivery_cpu.text(max(received, 1), "email"), "", "", "")
    if received < COUNT:
        rate = received / (time.perf_counter() - started)
        projected = COUNT / rate if rate else float("inf")
        report(f"invitations ({COUNT:,}): last email at the SMTP server via Celery",
               f"{received:,} of {COUNT:,} after {WAIT:g} s ({rate:.0f}/s)", f"< {DELIVERY_TARGET:g} s", "",
               f"gap: projected {projected:.0f} s")
        log(f"invitations: stopped waiting with {COUNT - received} emails still to come (see var/bench/worker.log)")
        return []
    report(f"invitations ({COUNT:,}): last email at the SMTP server via Celery",
           f"{elapsed:.1f} s ({COUNT / elapsed:.0f} emails/s)", f"< {DELIVERY_TARGET:g} s", "",
           "met" if elapsed < DELIVERY_TARGET else f"gap: {elapsed / DELIVERY_TARGET:.1f}× the target")
    return check_delivery(domain, sink)


if __name__ == "__main__":
    try:
        problems = main()
    except BenchError as error:
        log(f"bench: {error}")
        sys.exit(2)
    for problem in problems:
        log(f"invitations: {problem}")
    sys.exit(1 if problems else 0)
