"""Enrollments and check-ins at the same time (hardening), on PostgreSQL: its row locks and
unique constraints are what these rely on (SQLite serialises every writer, so there is nothing to
race there: skipped, and a failure under CI=true).

- 50 enrollments at once with one single-use secret (a registration PIN, a federated token, an Entra
  token for a user or a user-less Entra join): one wins.
- 200 distinct enrollments, 25 at a time: all succeed, every certificate serial unique.
- A device checking in from several sessions at once while commands keep being queued: each command
  is delivered once and acknowledged once."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from lxml import etree

from enrollment import auth
from management import commands
from enrollment.models import Device, RegistrationPin, SpentEntraToken
from management.models import DeviceCommand
from simulator import build_windows_csr
from tests import entra_tokens
from tests import omadm_messages as sml
from tests.enrollment_soap import (
    CONTENT_TYPE, NS, b64, password_security, rst_body, service_url, token_security,
)
from tests.factories import PASSWORD, UserFactory
from tests.factories_enrollment import (
    EntraSettingsFactory, JwksSetFactory, RegistrationPinFactory, certificate_header, certified_device,
    create_ca_chain, rsa_key,
)

pytestmark = pytest.mark.django_db(transaction=True)

PIN = "11112222"


def device_id(n):
    return f"{n:032X}"


def csrs(count):
    """Requests made up front (one key, many DeviceIDs): the threads only send them."""
    key = rsa_key(1)
    return [b64(build_windows_csr(key, device_id(n))) for n in range(count)]


def enroll(url, security, csr, n, enrollment_type="Full"):
    try:
        body = rst_body(security, csr, device_id=device_id(n), hw_dev_id=f"{n:064X}", device_name=f"PC-{n}",
                        enrollment_type=enrollment_type)
        response = Client().post(url, body, content_type=CONTENT_TYPE, secure=True)
        root = etree.fromstring(response.content)
        fault = root.find("s:Body/s:Fault", NS)
        return "enrolled" if fault is None else fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS)
    finally:
        connection.close()


def at_once(count, work):
    """`work(n)` for n in range(count), all started together (one thread each); their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(n):
        barrier.wait()
        try:
            results[n] = work(n)
        except Exception as exc:  # reported by the assertion on results; a thread cannot fail the test
            results[n] = repr(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_fifty_enrollments_with_one_registration_pin_enroll_one_device(postgres, organisation, alice):
    organisation.registration_mode = "pin"
    organisation.save(update_fields=["registration_mode"])
    create_ca_chain()
    pin = RegistrationPinFactory(user=alice, raw=PIN)
    requests = csrs(50)
    url = service_url(organisation, "enrollment")

    results = at_once(50, lambda n: enroll(url, password_security(alice.email, PIN), requests[n], n))

    assert results.count("enrolled") == 1, results
    assert set(results) == {"enrolled", "s:Authentication"}
    device = Device.objects.get()
    pin.refresh_from_db()
    assert not RegistrationPin.objects.usable().exists() and pin.consumed_by == device


def test_fifty_enrollments_with_one_federated_token_enroll_one_device(postgres, organisation, alice):
    organisation.auth_policy = "federated"
    organisation.save(update_fields=["auth_policy"])
    create_ca_chain()
    token = auth.issue_token(alice)
    requests = csrs(50)
    url = service_url(organisation, "enrollment")

    results = at_once(50, lambda n: enroll(url, token_security(token), requests[n], n))

    assert results.count("enrolled") == 1, results
    assert set(results) == {"enrolled", "s:Authentication"}
    assert Device.objects.get().federated_token_id


@pytest.mark.parametrize("enrollment_type, overrides", [
    ("Full", {}),
    # No user row to lock: only the spent token's unique index stands between the requests.
    ("Device", {"upn": None, "unique_name": None, "oid": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}),
])
def test_fifty_enrollments_with_one_entra_token_enroll_one_device(postgres, organisation, enrollment_type, overrides):
    create_ca_chain()
    EntraSettingsFactory()
    JwksSetFactory()
    token = entra_tokens.make_token(**overrides)
    requests = csrs(50)
    url = service_url(organisation, "enrollment")

    results = at_once(50, lambda n: enroll(url, entra_tokens.security(token), requests[n], n, enrollment_type))

    assert results.count("enrolled") == 1, results
    assert set(results) == {"enrolled", "s:Authentication"}
    assert SpentEntraToken.objects.get().device == Device.objects.get()


def test_two_hundred_distinct_enrollments_all_succeed_with_unique_serials(postgres, organisation):
    create_ca_chain()
    users = [UserFactory(email=f"user{n}@example.com") for n in range(200)]
    requests = csrs(200)
    url = service_url(organisation, "enrollment")

    # 25 connections at a time: the PostgreSQL server is shared (max_connections 100).
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda n: enroll(url, password_security(users[n].email, PASSWORD), requests[n], n),
                                range(200)))

    assert results == ["enrolled"] * 200
    serials = list(Device.objects.values_list("certificate_serial", flat=True))
    assert len(serials) == len(set(serials)) == 200
    assert Device.objects.values("user").distinct().count() == 200


def test_a_device_hammering_check_ins_while_commands_are_queued_gets_each_command_once(postgres, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 2
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    header = certificate_header(cert)
    delivered, lock = [], threading.Lock()
    queued_all = threading.Event()

    def post(body):
        response = Client().post(sml.URL, body, content_type=sml.CONTENT_TYPE, HTTP_X_SSL_CLIENT_CERT=header)
        assert response.status_code == 200, response.content[:300]
        return sml.read(response.content)

    def session(session_id):
        """One OMA-DM session: package 1, then acknowledge every command until the server sends none."""
        reply, msg = post(sml.package1(device.device_id, session=session_id)), 1
        while reply.commands:
            with lock:
                delivered.extend(target for _name, _cmd_id, target, _fmt, _data in reply.commands)
            msg += 1
            statuses = [sml.status(n + 1, reply.msg_id, cmd_id, name, 200)
                        for n, (name, cmd_id, *_rest) in enumerate(reply.commands)]
            reply = post(sml.message(device.device_id, statuses, session=session_id, msg=msg))

    def check_in(worker):
        try:
            for round_ in range(100):
                session(f"{worker}-{round_}")
                if queued_all.is_set():
                    session(f"{worker}-last")
                    return
        finally:
            connection.close()

    def queue_commands():
        try:
            for n in range(40):
                commands.queue(device, "Get", f"./DevDetail/Ext/Node{n}")
        finally:
            queued_all.set()
            connection.close()

    results = at_once(6, lambda n: queue_commands() if n == 0 else check_in(n))

    assert results == [None] * 6
    assert len(delivered) == len(set(delivered)) == 40
    assert DeviceCommand.objects.filter(status=DeviceCommand.Status.SUCCEEDED).count() == 40
