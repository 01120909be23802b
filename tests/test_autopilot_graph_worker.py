"""The Graph connector's tasks on the real Celery worker (Redis, PostgreSQL): a throttled request comes
back only after Graph's Retry-After."""
import time

import pytest

from autopilot import tasks
from autopilot.graph_models import GraphDeviceSync
from tests.factories_autopilot import AutopilotDeviceFactory
from tests.factories_graph import GraphConnectorFactory
from tests.fake_graph import IMPORTED
from tests.fake_graph import fake_graph  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def wait_for_registration(device, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if GraphDeviceSync.objects.filter(device=device, status=GraphDeviceSync.Status.REGISTERED).exists():
            return
        time.sleep(0.2)
    pytest.fail("the device was not registered in time")


def test_worker_retries_a_throttled_import_after_graphs_retry_after(live_tasks, fake_graph):
    GraphConnectorFactory(graph_base_url=fake_graph.url, token_base_url=fake_graph.url)
    device = AutopilotDeviceFactory()
    fake_graph.fail("POST", IMPORTED + "/import", 429, headers={"Retry-After": "2"},
                    body={"error": {"code": "TooManyRequests", "message": "Too many requests"}})

    tasks.sync_with_graph.delay()

    wait_for_registration(device)
    first, second = fake_graph.sent("POST", IMPORTED + "/import")
    assert second.at - first.at >= 2
    assert "retrying in 2 s" in live_tasks.output()
