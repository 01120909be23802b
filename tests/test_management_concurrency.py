"""A device hammering check-ins in parallel sessions gets each queued command once (PostgreSQL:
SELECT … FOR UPDATE SKIP LOCKED; SQLite serialises writers and has no row locks to test)."""
import threading

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from management import commands
from management.models import DeviceCommand
from tests import omadm_messages as sml
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain


@pytest.mark.django_db(transaction=True)
def test_parallel_sessions_never_receive_the_same_command(settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 3
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    for i in range(24):
        commands.queue(device, "Get", f"./DevDetail/Node{i}")
    received, errors = [], []
    barrier = threading.Barrier(8)

    def check_in(session):
        try:
            barrier.wait()
            response = Client().post(sml.URL, sml.package1(device.device_id, session=session),
                                     content_type=sml.CONTENT_TYPE, REMOTE_ADDR="127.0.0.1",
                                     HTTP_X_SSL_CLIENT_CERT=certificate_header(cert))
            received.extend(c[2] for c in sml.read(response.content).commands)
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=check_in, args=(format(i + 1, "X"),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len(received) == len(set(received)) == 24
    assert DeviceCommand.objects.filter(status=DeviceCommand.Status.SENT).count() == 24
