"""A scripted fake of Kiln's runtime API (docs/function-contract.md) on a Unix socket in a
temporary directory, for the SDK's tests. Not a test file itself."""

import http.server
import json
import os
import re
import shutil
import socketserver
import tempfile
import threading
import time
import urllib.parse

ROUTE = re.compile(r"^/v1/invocation/([^/]+)/([a-z]+)$")


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
    `{"drop": True}` (the connection is closed without an answer). Use as a context manager."""

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

    def answer(self, recorded):
        with self._lock:
            self.requests.append(recorded)
            route = self._routes.get(recorded.route[1], not_found)
            return route(recorded, self)


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
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded = Recorded(self.connection_number, self.command, self.path, list(self.headers.items()), body)
            reply = fake.answer(recorded)
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
