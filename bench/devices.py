"""Workload: the console's device list and device page with 100,000 devices (benchmark).

BENCH_DEVICES devices of BENCH_DEVICE_USERS users are seeded (once per database: a later run tops
them up). Rows this many go in with one INSERT ... SELECT over generate_series per table, the values
Django would write taken from a model instance; bulk_create of 100,000 devices takes minutes on a busy
2-core machine, and the seeding is not what is measured. One device also gets BENCH_DEVICE_COMMANDS
commands in its queue and history, a configuration group with settings and their states; a second
one gets five commands, to show that the page's queries do not depend on them.

BENCH_AUTOPILOT_DEVICES (as many as the devices) Autopilot records are seeded alike for the Autopilot
device list.

An administrator signs in over HTTP; each page is then fetched BENCH_PAGE_REPEATS times and the
median server time (bench/_queries.py: from the first middleware to the rendered response) and the
SQL query count are reported: the list, the list filtered by status, searches (by the owner's email,
by part of a device name, by part of a serial number: mdmportal/search.py), the device page, and the
other big lists with a search: the commands by device name, the Autopilot devices by serial number and
the users by email. Target: < 200 ms each, with a query count that does not grow with the data.
"""
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from bench._console import Console, create_admin
from bench._harness import BenchError, ServerCpu, log, report, server_url, setup_django, workers

DEVICES = int(os.environ.get("BENCH_DEVICES") or 100_000)
USERS = int(os.environ.get("BENCH_DEVICE_USERS") or 20_000)
COMMANDS = int(os.environ.get("BENCH_DEVICE_COMMANDS") or 200)
REPEATS = int(os.environ.get("BENCH_PAGE_REPEATS") or 5)
AUTOPILOT_DEVICES = int(os.environ.get("BENCH_AUTOPILOT_DEVICES") or DEVICES)
TARGET_MS = 200
PASSWORD = "Bench-console-password-9e2b"
PREFIX = "BENCHDEV"


def insert_series(instance, count, varying, start=0):
    """INSERT `count` rows like `instance` (unsaved) with generate_series(start, start + count - 1) as i;
    `varying` maps column names to SQL expressions of i. Returns nothing; raw SQL, PostgreSQL only."""
    from django.db import connection

    model = instance.__class__
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.column in varying:
            values.append(varying[field.column])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(instance, True), connection))
    table = connection.ops.quote_name(model._meta.db_table)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
           f"FROM generate_series(%s, %s) AS i")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, start, start + count - 1])


def seed():
    """Top the bench devices and their users up to DEVICES and USERS; returns (busy device, quiet device)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from enrollment.models import Device

    if connection.vendor != "postgresql":
        raise BenchError("the device workload seeds with PostgreSQL's generate_series: use a PostgreSQL DATABASE_URL")
    User = get_user_model()
    users = User.objects.filter(email__startswith="benchdev-")
    have = users.count()
    if have < USERS:
        insert_series(User(email="x", password="!", display_name="x", date_joined=timezone.now()), USERS - have, {
            "email": "'benchdev-' || lpad(i::text, 6, '0') || '@bench.invalid'",
            "display_name": "'Bench device user ' || i",
        }, start=have)
    first_user = users.order_by("pk").values_list("pk", flat=True).first()
    devices = Device.objects.filter(device_id__startswith=PREFIX)
    have = devices.count()
    if have < DEVICES:
        now = timezone.now()
        template = Device(device_id="x", enrollment_type=Device.EnrollmentType.FULL, method=Device.Method.ONPREMISE,
                          certificate_serial="x", certificate_thumbprint="x", certificate_not_after=now + timedelta(days=365),
                          appsrv_digest="x", appsrv_nonce="x", client_digest="x", client_nonce="x", enrolled_at=now,
                          manufacturer="Microsoft Corporation", model="Surface Laptop 5", os_version="10.0.22631.4460",
                          last_seen_at=now, login_status="user")
        insert_series(template, DEVICES - have, {
            "device_id": f"'{PREFIX}' || lpad(i::text, 24, '0')",
            "hw_dev_id": "md5('hw' || i)",
            "name": "'DESKTOP-' || upper(substr(md5('n' || i), 1, 7))",
            "user_id": f"{first_user} + i %% {USERS}",
            "certificate_serial": "'BE' || lpad(i::text, 30, '0')",
            "certificate_thumbprint": "upper(substr(md5('t' || i) || md5('u' || i), 1, 40))",
            "serial_number": "'SN' || lpad(i::text, 10, '0')",
            "status": "CASE WHEN i %% 10 = 0 THEN 'retired' ELSE 'enrolled' END",
            "enrolled_at": "now() - make_interval(mins => i)",
            "upn": "'benchdev-' || lpad((i %% " + str(USERS) + ")::text, 6, '0') || '@bench.invalid'",
        }, start=have)
    busy, quiet = devices.order_by("pk")[:2]
    for device, commands in ((busy, COMMANDS), (quiet, 5)):
        if not device.setting_states.exists():
            seed_device_page(device, commands)
    seed_autopilot_devices()
    return busy, quiet


def seed_autopilot_devices():
    """Top the bench's Autopilot records up to AUTOPILOT_DEVICES (a hash of a real record's size)."""
    from django.utils import timezone

    from autopilot.models import AutopilotDevice

    have = AutopilotDevice.objects.filter(serial_key__startswith=f"{PREFIX}AP").count()
    if have < AUTOPILOT_DEVICES:
        now = timezone.now()
        template = AutopilotDevice(serial_number="x", serial_key="x", created_at=now, updated_at=now)
        insert_series(template, AUTOPILOT_DEVICES - have, {
            "serial_number": f"'{PREFIX}AP' || upper(substr(md5('s' || i), 1, 10))",
            "serial_key": f"'{PREFIX}AP' || upper(substr(md5('s' || i), 1, 10)) || '-' || i",
            "hardware_hash": "repeat(md5('h' || i), 100)",
            "hardware_hash_digest": "md5('h' || i) || md5('d' || i)",
            "group_tag": "CASE WHEN i %% 4 = 0 THEN 'Kiosk' ELSE '' END",
            "ztd_id": "md5('z' || i)::uuid::text",
        }, start=have)


def seed_device_page(device, commands):
    """A queue and history of `commands` commands, and a group's settings with their states."""
    from django.utils import timezone

    from management.models import ConfigurationGroup, DeviceCommand, DeviceSettingState, GroupSetting

    now = timezone.now()
    statuses = [DeviceCommand.Status.SUCCEEDED, DeviceCommand.Status.FAILED, DeviceCommand.Status.QUEUED,
                DeviceCommand.Status.SENT, DeviceCommand.Status.TIMED_OUT]
    sent = DeviceCommand.objects.bulk_create([
        DeviceCommand(device=device, verb="Replace", target=f"./Device/Vendor/MSFT/Policy/Config/Bench/Setting{i}",
                      format="int", data=str(i), status=statuses[i % len(statuses)], source="bench",
                      result_data="x" * (i % 40), created_at=now - timedelta(minutes=i), expires_at=now + timedelta(days=1))
        for i in range(commands)])
    group, _ = ConfigurationGroup.objects.get_or_create(name=f"bench-devices-{device.pk}", defaults={"priority": 800})
    group.devices.add(device)
    group.settings.all().delete()
    settings = GroupSetting.objects.bulk_create([
        GroupSetting(group=group, loc_uri=f"./Device/Vendor/MSFT/Policy/Config/Bench/Group{i}", format="int", value="1")
        for i in range(10)])
    DeviceSettingState.objects.bulk_create([
        DeviceSettingState(device=device, loc_uri=s.loc_uri, label=s.loc_uri.rsplit("/", 1)[-1], format="int",
                           value="1", removal=s.removal, group=group, command=sent[i % len(sent)], applied_once=True)
        for i, s in enumerate(settings)])


def measure(console, query_log, path):
    """(median server ms, query counts seen, CpuSpent) over REPEATS GETs of `path` (after untimed ones)."""
    from bench._queries import log_size, requests_since

    # Untimed: every gunicorn worker fills its per-process caches (content types, templates) first. The
    # GETs go in parallel rounds, as many as the workers: sequential ones may all reach the same worker.
    with ThreadPoolExecutor(workers()) as pool:
        for _ in range(2):
            list(pool.map(lambda _: console.get(path), range(workers())))
    offset = log_size(query_log)
    meter = ServerCpu()
    for _ in range(REPEATS):
        console.get(path)
    cpu = meter.stop()
    requests = [r for r in requests_since(query_log, offset) if r.method == "GET"]
    if len(requests) != REPEATS:
        raise BenchError(f"the server logged {len(requests)} GETs of {path}, expected {REPEATS}")
    return statistics.median(r.milliseconds for r in requests), sorted({r.queries for r in requests}), cpu


def main():
    setup_django()
    from django.db import connection

    from autopilot.models import AutopilotDevice

    query_log = os.environ.get("BENCH_QUERY_LOG_ONPREMISE", "")
    if not query_log:
        raise BenchError("BENCH_QUERY_LOG_ONPREMISE is not set: run this through bench/run")
    busy, quiet = seed()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics after a bulk load, as autovacuum would soon do
    admin_email = f"admin-{os.urandom(4).hex()}@bench.invalid"
    create_admin(admin_email, PASSWORD)
    console = Console(server_url("onpremise"))
    console.sign_in(admin_email, PASSWORD)

    name_part = busy.name[len("DESKTOP-"):][:5]
    serial = AutopilotDevice.objects.filter(serial_key__startswith=f"{PREFIX}AP").order_by("pk")[0].serial_number
    pages = [
        ("device list", "/admin/enrollment/device/"),
        ("device list, filtered by status", "/admin/enrollment/device/?status__exact=enrolled"),
        ("device list, search by user email", "/admin/enrollment/device/?q=benchdev-000042%40bench.invalid"),
        ("device list, search by part of a name", f"/admin/enrollment/device/?q={name_part}"),
        (f"device page ({COMMANDS} commands, 10 settings)", f"/admin/enrollment/device/{busy.pk}/change/"),
        ("device commands, search by device name", f"/admin/management/devicecommand/?q={busy.name}"),
        ("Autopilot device list, search by part of a serial",
         f"/admin/autopilot/autopilotdevice/?q={serial[len(PREFIX) + 2:][:7]}"),
        ("user list, search by email", "/admin/accounts/user/?q=benchdev-000042%40bench"),
    ]
    rows = [(label, *measure(console, query_log, path)) for label, path in pages]
    _, quiet_counts, _ = measure(console, query_log, f"/admin/enrollment/device/{quiet.pk}/change/")
    _, page_two_counts, _ = measure(console, query_log, "/admin/enrollment/device/?p=2")
    for label, milliseconds, counts, cpu in rows:
        fixed = len(counts) == 1
        if label.startswith("device page"):
            fixed = fixed and counts == quiet_counts
            note = f"{'/'.join(map(str, counts))} SQL; 5 commands: {'/'.join(map(str, quiet_counts))}"
        elif label == "device list":
            fixed = fixed and counts == page_two_counts
            note = f"{'/'.join(map(str, counts))} SQL; page 2: {'/'.join(map(str, page_two_counts))}"
        else:
            note = f"{'/'.join(map(str, counts))} SQL"
        problems = []
        if milliseconds >= TARGET_MS:
            problems.append(f"{milliseconds / TARGET_MS:.1f}× the time")
        if not fixed:
            problems.append("query count varies")
        note += f"; CPU {cpu.text(REPEATS, 'page')}"
        report(f"console {label} ({DEVICES:,} devices)", f"{milliseconds:.0f} ms, {note}",
               f"< {TARGET_MS} ms, fixed SQL", "", "met" if not problems else "gap: " + ", ".join(problems))
    log(f"devices: median of {REPEATS} requests per page, server time from the first middleware to the rendered page")
    return []


if __name__ == "__main__":
    try:
        problems = main()
    except BenchError as error:
        log(f"bench: {error}")
        sys.exit(2)
    sys.exit(1 if problems else 0)
