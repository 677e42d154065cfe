"""A scripted fake of Kiln's runtime API (docs/function-contract.md) on a Unix socket in a
temporary directory, for the SDK's tests. Not a test file itself."""

import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import tempfile
import threading
import time
import urllib.parse

ROUTE = re.compile(r"^/v1/invocation/([^/]+)/([a-z]+)$")

# A chunk-size line as the SDK must send it: hex digits only (no extensions), CRLF.
CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]+)\r\n")


class Recorded:
    """A recorded request to the fake: which connection carried it, and what it said."""

    def __init__(self, connection, method, target, headers, body):
        # Which accepted connection (1, 2, ...) carried the request.
        self.connection = connection
        self.method = method
        self.target = target
        # Header fields as (name, value) pairs, as sent.
        self.headers = headers
        self.body = body
        # A chunked body: each chunk's data as it arrived (None for a Content-Length body).
        self.chunks = None
        # The trailer fields of a chunked body, as (name, value) pairs.
        self.trailers = []
        # Whether a chunked body ended with its last chunk.
        self.complete = False
        # What was wrong with a chunked body's framing, or None.
        self.framing_error = None
        # Whether the fake answered in the middle of the body (and closed the connection).
        self.cut = False

    @property
    def route(self):
        """The `(id, verb)` of `/v1/invocation/{id}/{verb}`, or `(None, "next")`."""
        if self.target == "/v1/invocation/next":
            return None, "next"
        match = ROUTE.match(self.target)
        return (urllib.parse.unquote(match.group(1)), match.group(2)) if match else (None, None)

    def header(self, name):
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name):
        return [value for field, value in self.headers if field.lower() == name.lower()]

    def trailer(self, name):
        return next((value for field, value in self.trailers if field.lower() == name.lower()), None)

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def plain(invocation_id, method="GET", path="/", query=None, deadline_ms=None, headers=(), body=b""):
    """A plain invocation as `next` hands it out."""
    return {"id": invocation_id, "method": method, "path": path, "query": query, "deadline_ms": deadline_ms,
            "headers": list(headers), "body": body}


def durable(invocation_id, instance_id="inst-1", attempt=1, input=None, checkpoints=None, body=None):
    """A durable dispatch: `Kiln-Method: POST`, `Kiln-Path: /`, the instance headers and the
    `{"input", "checkpoints"}` body."""
    if body is None:
        body = json.dumps({"input": input, "checkpoints": checkpoints or {}})
    return {"id": invocation_id, "method": "POST", "path": "/", "instance_id": instance_id, "attempt": attempt,
            "body": body}


class FakeKiln:
    """The fake runtime API. `next` hands out the queued invocations in order, then answers
    `503 container_retiring` (so the SDK's `run*` loops end). Every other route answers
    with `routes[verb](request, fake)` when a test gives one, else the default: `202` to
    response and error, first-write-wins storage for checkpoint, `202 suspended` for sleep
    and wait. A route answers a dict: `{"status", "json"}`, `{"status", "body"}` or
    `{"drop": True}` (the connection is closed without an answer). Use as a context manager.

    A chunked request body is read chunk by chunk, strictly (a malformed one is answered
    `400`): the request is in `requests` from its head on, each chunk is appended to its
    `chunks` as it arrives, and `routes["chunk"](request, fake)` (when given) runs after each
    chunk. It returns None to read on, or a reply, answered at once with `Connection: close`,
    after which the connection is shut (`request.cut`), as Kiln does when the caller left;
    with `"keep_open": True` the fake reads on (and drops) what comes until the SDK closes."""

    def __init__(self, invocations=(), routes=None):
        self._dir = tempfile.mkdtemp(prefix="kiln-sdk-python-")
        # The socket the SDK under test talks to.
        self.socket_path = os.path.join(self._dir, "runtime.sock")
        # Invocations `next` still has to hand out.
        self.queue = list(invocations)
        # Every request, in the order received.
        self.requests = []
        # Checkpoints stored by the default checkpoint route.
        self.store = {}
        # How many connections the SDK opened.
        self.connections = 0
        self._routes = dict(DEFAULT_ROUTES, **(routes or {}))
        self._lock = threading.Lock()
        self._server = _Server(self.socket_path, _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def posts(self):
        """The recorded requests other than `next`."""
        return [request for request in self.requests if request.route[1] != "next"]

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def wait_until(self, predicate, timeout=5.0):
        """Waits until `predicate()` holds; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake waited {timeout} s in vain")
            time.sleep(0.002)

    def answer(self, recorded):
        """Records a request read whole and answers it."""
        self.record(recorded)
        return self.route(recorded)

    def record(self, recorded):
        with self._lock:
            self.requests.append(recorded)

    def route(self, recorded, verb=None):
        """The reply of the route for `verb` (default: the request's own), None if there is none."""
        with self._lock:
            verb = verb or recorded.route[1]
            route = self._routes.get(verb, None if verb == "chunk" else not_found)
            return route(recorded, self) if route else None


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


def _handler_for(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with fake._lock:
                fake.connections += 1
                self.connection_number = fake.connections

        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def _answer(self):
            recorded = Recorded(self.connection_number, self.command, self.path, list(self.headers.items()), b"")
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                fake.record(recorded)
                reply = self._read_chunked(recorded)
                if reply is None:
                    return
                if not recorded.complete:
                    self._send(dict(reply, headers=list(reply.get("headers", [])) + [("connection", "close")]))
                    if reply.get("keep_open"):
                        recorded.cut = True
                        self.close_connection = True
                        self.rfile.read()
                        return
                    self._cut(recorded)
                    return
            else:
                length = int(self.headers.get("content-length") or 0)
                recorded.body = self.rfile.read(length) if length else b""
                reply = fake.answer(recorded)
            self._send(reply)

        def _read_chunked(self, recorded):
            """Reads chunks into `recorded` until the last one (then the route's reply), a
            reply of the chunk route, or a framing error (then a `400`); None when the
            connection closed or the reply drops it."""
            recorded.chunks = []
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    recorded.framing_error = "the connection closed inside the body"
                    self.close_connection = True
                    return None
                size = CHUNK_SIZE.fullmatch(line)
                if not size:
                    return self._framing_error(recorded, f"bad chunk-size line {line!r}")
                if int(size.group(1), 16) == 0:
                    break
                data = self.rfile.read(int(size.group(1), 16))
                if len(data) != int(size.group(1), 16) or self.rfile.read(2) != b"\r\n":
                    return self._framing_error(recorded, "a chunk's data is cut short or not followed by CRLF")
                recorded.chunks.append(data)
                recorded.body += data
                reply = fake.route(recorded, "chunk")
                if reply is not None:
                    return self._unless_dropped(reply, recorded)
            while True:
                line = self.rfile.readline(64 * 1024)
                if line == b"\r\n":
                    break
                name, colon, value = line.decode("latin-1").partition(":")
                if not colon or not line.endswith(b"\r\n"):
                    return self._framing_error(recorded, f"bad trailer line {line!r}")
                recorded.trailers.append((name, value.strip()))
            recorded.complete = True
            return self._unless_dropped(fake.route(recorded), recorded)

        def _framing_error(self, recorded, problem):
            recorded.framing_error = problem
            self.close_connection = True
            self._send({"status": 400, "json": {"error": {"code": "bad_request", "message": problem}}})
            return None

        def _unless_dropped(self, reply, recorded):
            if reply.get("drop"):
                self._cut(recorded)
                return None
            return reply

        def _cut(self, recorded):
            """Shuts the connection: the SDK's next write fails, what was sent stays readable."""
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            recorded.cut = True

        def _send(self, reply):
            if reply.get("drop"):
                self.close_connection = True
                return
            if "json" in reply:
                payload = json.dumps(reply["json"]).encode()
            else:
                payload = reply.get("body", b"")
                payload = payload.encode() if isinstance(payload, str) else payload
            # Kiln's runtime API sends no Date or Server header.
            self.send_response_only(reply["status"])
            for name, value in reply.get("headers", []):
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def log_message(self, *_):
            pass

    return Handler


def _next(_request, fake):
    if not fake.queue:
        return {"status": 503, "json": {"error": {"code": "container_retiring", "message": "this container takes no more work"}}}
    invocation = fake.queue.pop(0)
    headers = [("kiln-invocation-id", invocation["id"]), ("kiln-method", invocation["method"]),
               ("kiln-path", invocation["path"])]
    if invocation.get("query") is not None:
        headers.append(("kiln-query", invocation["query"]))
    headers.append(("kiln-deadline-ms", str(invocation.get("deadline_ms") or int(time.time() * 1000) + 60_000)))
    if invocation.get("instance_id"):
        headers += [("kiln-instance-id", invocation["instance_id"]), ("kiln-instance-attempt", str(invocation["attempt"]))]
    headers += invocation.get("headers", [])
    return {"status": 200, "headers": headers, "body": invocation.get("body", b"")}


def _accepted(_request, _fake):
    return {"status": 202}


def _checkpoint(request, fake):
    sent = request.json()
    fake.store.setdefault(sent["key"], sent["value"])
    return {"status": 200, "json": {"value": fake.store[sent["key"]]}}


def _suspended(_request, _fake):
    return {"status": 202, "json": {"suspended": True, "wake_at_ms": int(time.time() * 1000) + 60_000}}


def not_found(_request, _fake):
    return {"status": 404, "json": {"error": {"code": "not_found", "message": "no such runtime API route"}}}


DEFAULT_ROUTES = {"next": _next, "response": _accepted, "error": _accepted, "checkpoint": _checkpoint,
                  "sleep": _suspended, "wait": _suspended}
