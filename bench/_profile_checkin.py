"""CPU per steady-state OMA-DM session, in this process: no gunicorn, no client threads, no network.

    DATABASE_URL=postgres://…/somedb python -m bench._profile_checkin [--sessions N] [--profile cumulative|tottime]
        [--layers] [--dump FILE]

Production settings as bench/run gives its servers (DEBUG off, persistent connections, no HTTPS
redirect). Seeds its devices (each with a certificate from the issuing CA, in a group with two
settings, inventory fresh), then runs N sessions through Django's WSGI handler exactly as gunicorn
calls it: package 1 gets the three queued commands, the second POST answers them (Statuses, Results
for the Get). Queueing the commands and building/reading the messages are outside the measured time.
Prints the CPU time (time.process_time) per session, and that of the PostgreSQL backend serving the
connection over the same requests (read from /proc: PostgreSQL on this machine); with --profile, a
cProfile of the same span; with --layers, that profile's time by layer of the stack (bench/_layers.py).
"""
import argparse
import cProfile
import io
import os
import pstats
import secrets
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--profile", choices=["cumulative", "tottime"], nargs="*")
    parser.add_argument("--layers", action="store_true",
                        help="profile, and print the share of each layer of the stack (bench/_layers.py)")
    parser.add_argument("--dump", help="also save the profile to this file (pstats format)")
    args = parser.parse_args()
    from bench._harness import setup_in_process

    setup_in_process("devices")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    devices = seed(args.devices)
    # Warm-up: the group's settings go out, caches and connections fill.
    for device, header in devices:
        session(application, device, header, "1")
    profiled = args.profile or args.layers
    timings, profiler = [], cProfile.Profile(time.process_time) if profiled else None
    database = Backend()
    for i in range(args.sessions):
        device, header = devices[i % len(devices)]
        timings.append(session(application, device, header, format(i + 2, "X"), profiler, database))
    cpu = sum(timings)
    print(f"{args.sessions} sessions: CPU {cpu / args.sessions * 1000:.2f} ms per session "
          f"({cpu / args.sessions / 2 * 1000:.2f} ms per request), this process only; the PostgreSQL backend "
          f"serving it {database.seconds / args.sessions * 1000:.2f} ms per session (/proc, 10 ms ticks summed "
          f"over the requests)")
    if profiler:
        calls = pstats.Stats(profiler).total_calls
        print(f"  Python function calls per request (a figure the machine's load does not change): "
              f"{calls / args.sessions / 2:,.0f}")
        if args.layers:
            from bench._layers import report

            print("\n".join(report(pstats.Stats(profiler), args.sessions * 2, "request")))
        for sort in args.profile or ():
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(45)
            print(out.getvalue())
        if args.dump:
            profiler.dump_stats(args.dump)


def seed(count):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from pki import ca
    from enrollment.models import Device
    from management.models import ConfigurationGroup, GroupSetting
    from tests.factories_enrollment import certificate_header, rsa_key

    owner = get_user_model().objects.create_user(f"bench-profile-{secrets.token_hex(4)}@bench.invalid")
    key, now, devices = rsa_key(0), timezone.now(), []
    for _ in range(count):
        device_id = secrets.token_hex(16).upper()
        cert = ca.issue_device_certificate(key.public_key(), device_id)
        device = Device.objects.create(
            device_id=device_id, name=f"PROFILE-{device_id[:7]}", enrollment_type=Device.EnrollmentType.FULL,
            method=Device.Method.ONPREMISE, user=owner, upn=owner.email, certificate_serial=ca.serial_hex(cert),
            certificate_thumbprint=ca.thumbprint(cert), certificate_not_after=cert.not_valid_after_utc,
            enrolled_at=now, login_status="user", inventory_requested_at=now, os_version="10.0.22631.1")
        devices.append((device, certificate_header(cert)))
    group = ConfigurationGroup.objects.create(name=f"bench-profile-{secrets.token_hex(4)}", priority=900)
    group.devices.add(*[d for d, _ in devices])
    GroupSetting.objects.bulk_create([
        GroupSetting(group=group, loc_uri="./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", format="int", value="0"),
        GroupSetting(group=group, loc_uri="./Device/Vendor/MSFT/Policy/Config/Bluetooth/AllowDiscoverableMode",
                     format="int", value="0"),
    ])
    return devices


class Backend:
    """The CPU of the PostgreSQL backend of Django's connection (same machine), summed over the spans
    between start() and stop(): the requests, not the seeding between them."""

    def __init__(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pid = cursor.fetchone()[0]
        self.seconds, self.ticks = 0.0, os.sysconf("SC_CLK_TCK")

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def start(self):
        self.started = self.cpu()

    def stop(self):
        self.seconds += self.cpu() - self.started


def session(application, device, header, session_id, profiler=None, database=None):
    """One two-message session; returns the CPU seconds of the two requests."""
    from bench.checkin import COMMAND_SHAPES, queue_commands
    from tests import omadm_messages as sml

    queue_commands([(device, None)], len(COMMAND_SHAPES) - 1)
    first, cpu = post(application, sml.package1(device.device_id, session=session_id), header, profiler, database)
    reply = sml.read(first)
    answers = [sml.status(i + 2, reply.msg_id, cmd_id, name, 200) for i, (name, cmd_id, *_) in enumerate(reply.commands)]
    answers += [sml.results(i + 50, reply.msg_id, cmd_id, target, "x")
                for i, (name, cmd_id, target, *_) in enumerate(reply.commands) if name == "Get"]
    second, more = post(application, sml.message(device.device_id, answers, session=session_id, msg=2), header, profiler,
                        database)
    if sml.read(second).commands:
        raise SystemExit("the second message got commands: the session did not end")
    return cpu + more


def post(application, body, header, profiler, database=None):
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/ManagementServer/MDM.svc", "SCRIPT_NAME": "",
        "QUERY_STRING": "mode=Maintenance&Platform=WoA", "CONTENT_TYPE": "application/vnd.syncml.dm+xml",
        "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_X_SSL_CLIENT_CERT": header,
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    statuses = []
    if database:
        database.start()
    started = time.process_time()
    if profiler:
        profiler.enable()
    result = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    content = b"".join(result)
    result.close()
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    if database:
        database.stop()
    if not statuses[0].startswith("200"):
        raise SystemExit(f"HTTP {statuses[0]}: {content[:300]!r}")
    return content, cpu


if __name__ == "__main__":
    main()
