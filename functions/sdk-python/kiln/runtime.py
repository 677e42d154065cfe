"""The function's side of Kiln's runtime API on the runtime socket: fetch the next
invocation, post its outcome, and the durable calls (checkpoint, sleep, wait).

One keep-alive connection carries every call. When a request on the kept connection
fails before any byte of the answer arrived (Kiln closed it while idle), it is sent once
more on a fresh connection; a failure on a fresh connection is raised as is. A streamed
response goes over a connection of its own (`streamed.py`)."""

import json
import os
import sys
import time
import urllib.parse

from .errors import ApiError, Failure, Interrupt, error_summary
from .connection import Connection, Disconnected
from .invocation import Invocation
from .response import encode_response
from .streamed import send_streamed

# Where Kiln mounts the runtime socket when `KILN_RUNTIME_SOCKET` is not set.
DEFAULT_SOCKET = "/run/kiln/runtime.sock"

# Pauses (seconds) before each retry of a durable call Kiln answered `503
# store_unavailable`; when they are used up the call fails with `StoreUnavailable`.
STORE_RETRY_DELAYS = (0.1, 0.25, 0.5)

# Errors that mean the peer went away before answering.
DISCONNECTS = (Disconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class Runtime:
    """A connection to Kiln's runtime API, kept alive between calls."""

    def __init__(self, socket_path, store_retry_delays=STORE_RETRY_DELAYS):
        self.socket_path = socket_path
        # One connection, reused for every call, without a timeout (`next` is a long poll).
        self._connection = Connection(socket_path)
        # Pauses before retrying a durable call answered `503`.
        self._store_retry_delays = tuple(store_retry_delays)

    @classmethod
    def from_env(cls, env=None):
        """A runtime for the socket named by `KILN_RUNTIME_SOCKET`, or `DEFAULT_SOCKET`."""
        env = os.environ if env is None else env
        return cls(env.get("KILN_RUNTIME_SOCKET") or DEFAULT_SOCKET)

    def next(self):
        """Waits, without a time limit, for the next invocation. Raises `ApiError` for an
        answer other than `200` (`503` means the container is retiring)."""
        status, headers, body = self._send("GET", "/v1/invocation/next", [], b"")
        if status != 200:
            raise ApiError(status, body)
        return Invocation.from_next_answer(headers, body)

    def respond(self, invocation_id, response, log=None):
        """Completes the invocation with `response`. A response Kiln cannot take raises
        `InvalidResponse` before anything is sent, and the invocation stays open.

        A streamed response is produced and sent chunk by chunk before this returns. When
        its body fails, `log(line)` (default: stderr) gets the traceback and Kiln the error
        type; when Kiln stops taking it (the caller left: `410 caller_gone`; the stream was
        cut: `408 stream_cut`) this raises `ApiError` with Kiln's answer, or logs a line when
        the answer cannot be read. Either way the next invocation can be fetched."""
        status, headers, body = encode_response(response)
        target = f"/v1/invocation/{encode_segment(invocation_id)}/response"
        headers = [("Kiln-Status", str(status))] + headers
        if isinstance(body, bytes):
            self._post(target, headers, body)
            return
        log = log or stderr_log
        try:
            answer = send_streamed(self.socket_path, target, headers, body,
                                   lambda line: log(f"invocation {invocation_id}: {line}"))
        except OSError as error:
            raise _with_context(error, "POST", target, self.socket_path)
        if answer is not None and not 200 <= answer[0] <= 299:
            raise ApiError(*answer)

    def fail(self, invocation_id, error_type, message):
        """Reports that the invocation failed: the caller gets `502 function_error` with
        `error_type`; `message` goes to Kiln's log only."""
        body = json.dumps({"errorType": str(error_type), "errorMessage": str(message)}).encode()
        self._post(f"/v1/invocation/{encode_segment(invocation_id)}/error", [("Content-Type", "application/json")], body)

    def checkpoint(self, invocation_id, key, value):
        """Stores `value` under `key` unless the key is stored already, and returns the
        stored value (the first one wins)."""
        reply = self._durable_call(invocation_id, "checkpoint", {"key": key, "value": value})
        if reply["suspended"]:
            raise Failure("RuntimeApiError", "checkpoint: Kiln answered 202 to a checkpoint")
        return reply["value"]

    def sleep(self, invocation_id, key, duration_ms=None, wake_at_ms=None):
        """Kiln stores the wake time under `key` the first time and uses the stored time on
        every later call with that key. Returns `{"suspended": True, "wake_at_ms": ...}` or
        `{"suspended": False, "value": ...}`."""
        body = {"key": key, "wake_at_ms": wake_at_ms} if wake_at_ms is not None else {"key": key, "duration_ms": duration_ms}
        return self._durable_call(invocation_id, "sleep", body)

    def wait(self, invocation_id, key, event, timeout_ms):
        """Consumes the oldest unconsumed `event` signal, or reports that the wait's
        deadline (fixed by the first call with `key`) has passed; returns like `sleep`."""
        return self._durable_call(invocation_id, "wait", {"key": key, "event": event, "timeout_ms": timeout_ms})

    def close(self):
        """Closes the kept connection."""
        self._connection.close()

    def _durable_call(self, invocation_id, verb, body):
        """A durable call. Kiln's refusals become: `409 instance_fenced` and `404
        unknown_invocation` an `Interrupt` "fenced", `413` an `Interrupt` "stopped", `503`
        retries with a back-off, anything else a `Failure` `RuntimeApiError`."""
        target = f"/v1/invocation/{encode_segment(invocation_id)}/{verb}"
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        retry = 0
        while True:
            try:
                status, _, answer = self._send("POST", target, [("Content-Type", "application/json")], payload)
            except OSError as error:
                raise Failure("IoError", f"{verb}: {error}") from error
            if status in (200, 202):
                return _parse_reply(verb, status, answer)
            refusal = ApiError(status, answer)
            # A dispatch that already ended (timed out) is as stale as a fenced one.
            if status in (404, 409) and refusal.code in ("instance_fenced", "unknown_invocation"):
                raise Interrupt("fenced", f"this dispatch is stale ({refusal.code})")
            if status == 413:
                raise Interrupt("stopped", f"Kiln stopped the instance: {error_summary(status, answer)}")
            if status == 503 and retry < len(self._store_retry_delays):
                time.sleep(self._store_retry_delays[retry])
                retry += 1
                continue
            raise Failure("StoreUnavailable" if status == 503 else "RuntimeApiError", f"{verb}: {refusal}")

    def _post(self, target, headers, body):
        """Posts and expects a 2xx answer; raises `ApiError` otherwise."""
        status, _, answer = self._send("POST", target, headers, body)
        if not 200 <= status <= 299:
            raise ApiError(status, answer)

    def _send(self, method, target, headers, body):
        """Sends one request and reads its answer, retrying once on a stale kept connection."""
        reused = self._connection.is_open
        try:
            return self._connection.exchange(method, target, headers, body)
        except DISCONNECTS as error:
            if not reused:
                raise _with_context(error, method, target, self.socket_path)
        except OSError as error:
            raise _with_context(error, method, target, self.socket_path)
        try:
            return self._connection.exchange(method, target, headers, body)
        except OSError as error:
            raise _with_context(error, method, target, self.socket_path)


def stderr_log(line):
    """The SDK's default log: a `kiln-sdk:` line on stderr (Kiln attributes it to the invocation)."""
    sys.stderr.write(f"kiln-sdk: {line}\n")
    sys.stderr.flush()


def encode_segment(segment):
    """Percent-encodes everything but RFC 3986 unreserved characters, for one path segment."""
    return urllib.parse.quote(str(segment), safe="")


def _parse_reply(verb, status, answer):
    """Reads `200 {"value": ...}` or `202 {"suspended": true, "wake_at_ms": ...}`."""
    try:
        body = json.loads(answer.decode("utf-8"))
    except ValueError as error:
        raise Failure("RuntimeApiError", f"{verb}: Kiln answered a body that is not JSON ({error})") from error
    if status == 202:
        wake_at_ms = body.get("wake_at_ms") if isinstance(body, dict) else None
        return {"suspended": True, "wake_at_ms": wake_at_ms if isinstance(wake_at_ms, int) else 0}
    if not isinstance(body, dict) or "value" not in body:
        raise Failure("RuntimeApiError", f'{verb}: Kiln answered 200 without a "value"')
    return {"suspended": False, "value": body["value"]}


def _with_context(error, method, target, socket_path):
    message = f"{method} {target} on {socket_path}: {error.strerror or error}"
    return OSError(error.errno, message) if error.errno is not None else OSError(message)
