"""What the Graph connector's requests may do on the wire: the token never follows a redirect to
another origin (RFC 9110 §15.4: a client chooses whether to follow; urllib otherwise copies every
header to the new URL), answers are read up to a cap, and a huge one is an error, not a memory spike."""
import pytest

from autopilot import graph, tasks
from autopilot.graph_models import GraphConnector
from tests.factories_autopilot import AutopilotDeviceFactory
from tests.fake_graph import IDENTITIES, IMPORTED, Flood
from tests.fake_graph import connector, elsewhere, fake_graph, fresh_tokens  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(connector):
    return graph.Client(GraphConnector.get())


# --- redirects --------------------------------------------------------------------------------------

def test_a_redirect_to_another_host_does_not_carry_the_token(fake_graph, elsewhere, connector):
    fake_graph.fail("GET", IDENTITIES, 302, headers={"Location": f"{elsewhere.url}{IDENTITIES}"}, times=10)

    tasks.sync_with_graph.delay()

    assert [r.headers.get("Authorization") for r in elsewhere.requests if r.headers.get("Authorization")] == []
    connector.refresh_from_db()
    assert "redirect" in connector.last_error and "127.0.0.1" in connector.last_error


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_redirect_to_another_origin_is_followed(fake_graph, elsewhere, client, status):
    fake_graph.fail("GET", IDENTITIES, status, headers={"Location": f"{elsewhere.url}{IDENTITIES}"})

    with pytest.raises(graph.GraphError, match="redirect"):
        client.get(IDENTITIES)
    assert elsewhere.requests == []


def test_a_post_redirected_elsewhere_is_not_followed(fake_graph, elsewhere, connector):
    AutopilotDeviceFactory()
    fake_graph.fail("POST", IMPORTED + "/import", 302, headers={"Location": f"{elsewhere.url}/steal"}, times=10)

    tasks.sync_with_graph.delay()

    assert elsewhere.requests == []


# --- answer size ------------------------------------------------------------------------------------

def test_an_answer_over_the_cap_is_a_clear_error_and_is_not_read_to_the_end(fake_graph, client, settings):
    settings.GRAPH_MAX_RESPONSE_BYTES = 64 * 1024
    flood = Flood(total=64 * 1024 * 1024)
    fake_graph.fail("GET", IDENTITIES, 200, body=flood)

    with pytest.raises(graph.GraphError, match="larger than 64 KB"):
        client.get(IDENTITIES)

    assert flood.done.wait(30)
    assert flood.written < flood.total


def test_a_declared_length_over_the_cap_is_refused_before_reading(fake_graph, client, settings):
    settings.GRAPH_MAX_RESPONSE_BYTES = 64 * 1024
    flood = Flood(total=64 * 1024 * 1024, content_length=64 * 1024 * 1024)
    fake_graph.fail("GET", IDENTITIES, 200, body=flood)

    with pytest.raises(graph.GraphError, match="larger than 64 KB"):
        client.get(IDENTITIES)

    assert flood.done.wait(30)
    assert flood.written < flood.total


def test_an_error_answer_over_the_cap_is_refused_too(fake_graph, client, settings):
    settings.GRAPH_MAX_RESPONSE_BYTES = 64 * 1024
    flood = Flood(total=64 * 1024 * 1024)
    fake_graph.fail("GET", IDENTITIES, 400, body=flood)

    with pytest.raises(graph.GraphError, match="larger than 64 KB"):
        client.get(IDENTITIES)

    assert flood.done.wait(30)
    assert flood.written < flood.total


def test_an_answer_within_the_cap_is_read_whole(fake_graph, client, settings):
    fake_graph.add_identity("SN-CAP")
    settings.GRAPH_MAX_RESPONSE_BYTES = 64 * 1024

    assert [i["serialNumber"] for i in client.get(IDENTITIES)["value"]] == ["SN-CAP"]
