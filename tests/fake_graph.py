"""A local stand-in for the few Microsoft Graph and identity-platform endpoints the Autopilot connector
uses, on 127.0.0.1, recording every request. Shapes follow Graph's documentation (v1.0
importedWindowsAutopilotDeviceIdentity and its import action, beta windowsAutopilotDeviceIdentity,
windowsAutopilotDeploymentProfile and its assignments, v1.0 groups; RFC 6749 §4.4 / §5.2 for tokens).

Tests script failures with `fail()` (throttling, outages, refusals, redirects, a `Flood` of bytes) and
Microsoft's verdicts with `import_errors` / `rejected_serials`. `elsewhere` is another server (another
port) that records what reaches it: where a hostile redirect would send the token.
"""
import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TENANT = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CLIENT_SECRET = "Xy7~s3cr3t.value-NOT-to-leak_42"

IMPORTED = "/v1.0/deviceManagement/importedWindowsAutopilotDeviceIdentities"
IDENTITIES = "/beta/deviceManagement/windowsAutopilotDeviceIdentities"
IDENTITIES_V1 = "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities"
PROFILES = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles"
GROUPS = "/v1.0/groups"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: object
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int
    headers: dict
    body: object
    times: int


@dataclass
class Flood:
    """A body of `total` bytes streamed without Content-Length (or with a declared one), in pieces;
    `written` counts what the client took before it hung up."""
    total: int
    content_length: int | None = None
    piece: int = 64 * 1024
    written: int = 0
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakeGraph:
    requests: list = field(default_factory=list)
    token_lifetime: int = 3599
    tokens_issued: int = 0
    valid_tokens: set = field(default_factory=set)
    imports: dict = field(default_factory=dict)
    polls: dict = field(default_factory=dict)
    polls_until_done: int = 1
    import_errors: dict = field(default_factory=dict)
    rejected_serials: dict = field(default_factory=dict)
    identities: list = field(default_factory=list)
    profiles: dict = field(default_factory=dict)
    assignments: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    faults: list = field(default_factory=list)
    page_size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    # --- scripting --------------------------------------------------------------------------------

    def fail(self, method, path_prefix, status, *, headers=None, body=None, times=1):
        self.faults.append(Fault(method, path_prefix, status, headers or {}, body, times))

    def revoke_tokens(self):
        self.valid_tokens.clear()

    def add_identity(self, serial, **fields):
        identity = {
            "@odata.type": "#microsoft.graph.windowsAutopilotDeviceIdentity",
            "id": str(uuid.uuid4()), "serialNumber": serial, "groupTag": "",
            "deploymentProfileAssignmentStatus": "notAssigned", "enrollmentState": "notContacted",
            "lastContactedDateTime": "0001-01-01T00:00:00Z", **fields,
        }
        self.identities.append(identity)
        return identity

    def sent(self, method, prefix=""):
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def graph_requests(self):
        return [r for r in self.requests if not r.path.endswith("/oauth2/v2.0/token")]

    def token_requests(self):
        return [r for r in self.requests if r.path.endswith("/oauth2/v2.0/token")]

    # --- serving ----------------------------------------------------------------------------------

    def handle(self, method, raw_path, headers, raw_body):
        parts = urllib.parse.urlsplit(raw_path)
        path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query))
        if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body = dict(urllib.parse.parse_qsl(raw_body.decode()))
        else:
            body = json.loads(raw_body) if raw_body else None
        with self.lock:
            self.requests.append(Recorded(method, path, query, dict(headers), body))
            for fault in self.faults:
                if fault.times and fault.method == method and path.startswith(fault.path_prefix):
                    fault.times -= 1
                    return fault.status, fault.headers, fault.body
            if path == f"/{TENANT}/oauth2/v2.0/token" and method == "POST":
                return self._token(body)
            if headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_tokens:
                return 401, {}, {"error": {"code": "InvalidAuthenticationToken",
                                           "message": "Access token has expired or is not yet valid."}}
            return self._route(method, path, query, body)

    def _token(self, form):
        if (form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET or form.get("scope") != f"{self.url}/.default"):
            return 401, {}, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: Invalid client secret provided."}
        self.tokens_issued += 1
        token = f"token-{self.tokens_issued}-{uuid.uuid4().hex}"
        self.valid_tokens.add(token)
        return 200, {}, {"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token}

    def _route(self, method, path, query, body):
        segments = path.split("/")
        if path == IMPORTED + "/import" and method == "POST":
            return self._import(body)
        if path.startswith(IMPORTED + "/") and len(segments) == 5:
            return self._imported(method, segments[4])
        if path == IDENTITIES and method == "GET":
            return self._identities(query)
        if path.startswith(IDENTITIES_V1 + "/") and path.endswith("/updateDeviceProperties") and method == "POST":
            return self._update_properties(segments[4], body)
        if path == PROFILES and method == "POST":
            profile = {**body, "id": str(uuid.uuid4())}
            self.profiles[profile["id"]] = profile
            self.assignments[profile["id"]] = []
            return 201, {}, profile
        if path.startswith(PROFILES + "/"):
            return self._profile(method, segments[4:], body)
        if path == GROUPS and method == "POST":
            group = {**body, "id": str(uuid.uuid4())}
            self.groups[group["id"]] = group
            return 201, {}, group
        return 404, {}, {"error": {"code": "ResourceNotFound", "message": f"No route {method} {path}"}}

    def _import(self, body):
        items = body["importedWindowsAutopilotDeviceIdentities"]
        for item in items:
            if item["serialNumber"] in self.rejected_serials:
                message = self.rejected_serials[item["serialNumber"]]
                return 400, {}, {"error": {"code": "BadRequest", "message": message}}
        created = []
        for item in items:
            record = {**item, "id": str(uuid.uuid4())}
            self.imports[record["id"]] = record
            created.append(record)
        return 200, {}, {"value": created}

    def _imported(self, method, imported_id):
        record = self.imports.get(imported_id)
        if record is None:
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "Not found"}}
        if method == "DELETE":
            del self.imports[imported_id]
            return 204, {}, None
        self.polls[imported_id] = self.polls.get(imported_id, 0) + 1
        if self.polls[imported_id] >= self.polls_until_done and record["state"]["deviceImportStatus"] == "pending":
            error = self.import_errors.get(record["serialNumber"])
            if error:
                record["state"].update(deviceImportStatus="error", deviceErrorCode=error[0], deviceErrorName=error[1])
            else:
                identity = self.add_identity(record["serialNumber"], groupTag=record["groupTag"])
                record["state"].update(deviceImportStatus="complete", deviceRegistrationId=identity["id"])
        return 200, {}, record

    def _identities(self, query):
        top = int(query.get("$top", 1000))
        size = min(top, self.page_size or top)
        skip = int(query.get("$skiptoken", 0))
        page = {"value": self.identities[skip:skip + size]}
        if skip + size < len(self.identities):
            page["@odata.nextLink"] = f"{self.url}{IDENTITIES}?$top={top}&$skiptoken={skip + size}"
        return 200, {}, page

    def _update_properties(self, identity_id, body):
        identity = next((i for i in self.identities if i["id"] == identity_id), None)
        if identity is None:
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "Device not found"}}
        unknown = set(body) - {"userPrincipalName", "addressableUserName", "groupTag", "displayName"}
        if unknown:
            return 400, {}, {"error": {"code": "BadRequest", "message": f"Unknown properties {sorted(unknown)}"}}
        identity.update(body)
        return 204, {}, None

    def _profile(self, method, rest, body):
        profile = self.profiles.get(rest[0])
        if profile is None:
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "Profile not found"}}
        if len(rest) == 1 and method == "PATCH":
            profile.update(body)
            return 204, {}, None
        if rest[1:] == ["assignments"] and method == "GET":
            return 200, {}, {"value": self.assignments[rest[0]]}
        if rest[1:] == ["assignments"] and method == "POST":
            assignment = {**body, "id": str(uuid.uuid4())}
            self.assignments[rest[0]].append(assignment)
            return 201, {}, assignment
        if len(rest) == 3 and rest[1] == "assignments" and method == "DELETE":
            self.assignments[rest[0]] = [a for a in self.assignments[rest[0]] if a["id"] != rest[2]]
            return 200, {}, None
        return 405, {}, {"error": {"code": "BadRequest", "message": "Unsupported"}}


class _Handler(BaseHTTPRequestHandler):
    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.server.fake.handle(self.command, self.path, self.headers, raw)
        if isinstance(body, Flood):
            return self._flood(status, headers, body)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _flood(self, status, headers, flood):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Type", "application/json")
        if flood.content_length is not None:
            self.send_header("Content-Length", str(flood.content_length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        piece = b'{"value": [' + b" " * (flood.piece - 11)
        try:
            while flood.written < flood.total:
                self.wfile.write(piece)
                flood.written += len(piece)
                piece = b" " * flood.piece
        except OSError:
            pass  # the client hung up: what it refused to read was never sent
        finally:
            flood.done.set()

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format, *args):
        pass


def _serving(fake):
    """Serve `fake` (its handle() answers every request) on a loopback port until the test ends; its
    address is set as fake.url."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_graph():
    yield from _serving(FakeGraph())


class Elsewhere:
    """Another host:port: answers every request 200 with an empty page and records its method, path
    and headers."""

    def __init__(self):
        self.requests = []

    def handle(self, method, raw_path, headers, raw_body):
        self.requests.append(Recorded(method, urllib.parse.urlsplit(raw_path).path, {}, dict(headers), raw_body))
        return 200, {}, {"value": []}


@pytest.fixture
def elsewhere():
    yield from _serving(Elsewhere())


@pytest.fixture(autouse=True)
def fresh_tokens():
    """Graph access tokens are cached per process: each test starts without one (autouse where imported)."""
    from autopilot import graph

    graph._tokens.clear()
    yield
    graph._tokens.clear()


@pytest.fixture
def connector(fake_graph):
    """The Graph connector, pointed at the fake Graph for its token and its calls."""
    from tests.factories_graph import GraphConnectorFactory

    return GraphConnectorFactory(graph_base_url=fake_graph.url, token_base_url=fake_graph.url)
