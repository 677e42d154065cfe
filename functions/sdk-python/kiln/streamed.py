"""Sending a streamed response (`kiln.stream()`, or a `Response` whose body is an iterator)
to `POST /v1/invocation/{id}/response`: the head with `Transfer-Encoding: chunked` on a
connection of its own (a kept one may have gone stale, and a streamed body cannot be sent
again), each item of the body as one chunk as soon as it is produced, then the last chunk,
with a `Kiln-Stream-Error` trailer when producing the body failed. The connection is closed
afterwards.

Kiln answers only when the stream is over. When it stops taking the body early (`410
caller_gone`, `408 stream_cut`), its answer is already on the connection: writing stops
(Kiln answered, or a write failed), the body's iterator is closed, and the answer is read."""

from .connection import Connection, encode_head
from .errors import describe_error, error_type_of
from .response import TOKEN, chunk_bytes

# The trailer's error type when the exception's own type is not an HTTP token.
DEFAULT_STREAM_ERROR = "StreamFailed"

# Chunks up to this size are written together with their framing in one write.
COALESCE_LIMIT = 16 * 1024


class ChunkedRequest:
    """A `POST` whose body follows in chunks, on a fresh connection that closes with it."""

    def __init__(self, socket_path, target, headers):
        """Connects and sends the head; raises `OSError` when the socket cannot be reached."""
        self._connection = Connection(socket_path)
        self._connection.open()
        # Why Kiln stopped taking the body (an `OSError`), or None while it takes it.
        self.broken = None
        self._write(encode_head("POST", target, headers, ("Transfer-Encoding", "chunked")))

    def send_chunk(self, data):
        """Sends `data` as one chunk, at once; empty data sends nothing (an empty chunk
        would end the body). Returns False once Kiln stopped taking the body."""
        if data:
            size = b"%x\r\n" % len(data)
            if len(data) <= COALESCE_LIMIT:
                self._write(size + data + b"\r\n")
            else:
                self._write(size, data, b"\r\n")
        return self.broken is None

    def finish(self, trailers=()):
        """Sends the last chunk, with `trailers` (already checked), unless Kiln stopped taking the body."""
        fields = "".join(f"{name}: {value}\r\n" for name, value in trailers)
        self._write(f"0\r\n{fields}\r\n".encode("latin-1"))

    def answer(self):
        """Kiln's answer `(status, header pairs, body)`; raises `OSError` when it cannot be read."""
        return self._connection.read_answer()

    def close(self):
        self._connection.close()

    def _write(self, *parts):
        if self.broken is not None:
            return
        # Anything from Kiln before the body ended is its refusal (or its closing the connection).
        if self._connection.has_input():
            self.broken = ConnectionAbortedError("Kiln answered before the body ended")
            return
        try:
            for part in parts:
                self._connection.send(part)
        except OSError as error:
            self.broken = error


def send_streamed(socket_path, target, headers, chunks, log):
    """Posts the head, every item of the iterator `chunks`, then the end; returns Kiln's
    answer `(status, body)`, or None when it could not be read (`log(line)` says why).

    An exception raised by `chunks` (or an item that is neither bytes nor str) goes to the
    log and ends the body with a `Kiln-Stream-Error` trailer naming its type. Raises
    `OSError` only when the runtime socket cannot be reached."""
    request = ChunkedRequest(socket_path, target, headers)
    try:
        failure = _send_body(request, chunks)
        if failure is not None:
            log(f"the streamed body failed: {describe_error(failure)}")
        if request.broken is None:
            request.finish([] if failure is None else [("Kiln-Stream-Error", stream_error_type(failure))])
        try:
            status, _, body = request.answer()
        except OSError as error:
            cut = f"Kiln stopped taking the streamed body ({request.broken}); " if request.broken else ""
            log(f"{cut}its answer could not be read: {error}")
            return None
        return status, body
    finally:
        request.close()


def stream_error_type(error):
    """The `Kiln-Stream-Error` of an exception: its error type (class name, or a `Failure`'s
    type) when that is an HTTP token, else `StreamFailed`."""
    error_type = error_type_of(error)
    return error_type if TOKEN.fullmatch(error_type) else DEFAULT_STREAM_ERROR


def _send_body(request, chunks):
    """Sends each item as a chunk until the items run out or Kiln stops taking them, then
    closes `chunks` (a generator's `finally` runs). Returns the exception raised, or None."""
    failure = closing_failure = None
    try:
        for item in chunks:
            if not request.send_chunk(chunk_bytes(item)):
                break
    except Exception as error:
        failure = error
    finally:
        closing_failure = _close(chunks)
    return failure or closing_failure


def _close(chunks):
    """Closes a generator (or any iterator with `close`); returns what that raised, or None."""
    close = getattr(chunks, "close", None)
    try:
        if close is not None:
            close()
    except Exception as error:
        return error
    return None
