"""A minimal HTTP/1.1 client for one Unix socket, as Kiln's runtime API needs it: one
kept-alive connection, `Content-Length` (or chunked) bodies, header sections of any size.
A request with a chunked body is written piece by piece by its caller (see `streamed.py`)."""

import select
import socket

# Largest header section accepted in an answer: Kiln forwards the caller's headers (its
# front door takes 64 KiB of them) in the answer to `next`.
MAX_HEADER_BYTES = 1024 * 1024


class Disconnected(ConnectionError):
    """The connection closed before a byte of the answer arrived."""


class Connection:
    """A connection to `socket_path`, opened on first use and reopened after a close."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self._socket = None
        self._reader = None

    @property
    def is_open(self):
        return self._socket is not None

    def exchange(self, method, target, headers, body):
        """Sends one request, returns `(status, header pairs, body bytes)`. Raises
        `Disconnected` when nothing of the answer arrived, `OSError` on other failures."""
        self.open()
        try:
            framing = ("Content-Length", str(len(body))) if body or method != "GET" else None
            self._socket.sendall(encode_head(method, target, headers, framing) + body)
            return self._read_answer()
        except BaseException:
            self.close()
            raise

    def open(self):
        """Connects unless the connection is open; raises `OSError` when the socket cannot be reached."""
        if self._socket is None:
            self._open()

    def send(self, data):
        """Writes `data` as it is, e.g. part of a chunked body; raises `OSError`
        (`BrokenPipeError` once the peer closed)."""
        self._socket.sendall(data)

    def has_input(self):
        """Whether the peer sent something not read yet, or closed: without waiting."""
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(self._socket, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([self._socket], [], [], 0)[0])

    def read_answer(self):
        """Reads the answer to a request written with `send`: `(status, header pairs, body
        bytes)`. Raises `Disconnected` when nothing of it arrived, `OSError` otherwise, and
        closes the connection then."""
        try:
            return self._read_answer()
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._socket is not None:
            self._reader.close()
            self._socket.close()
        self._socket = None
        self._reader = None

    def _open(self):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(self.socket_path)
        except BaseException:
            connection.close()
            raise
        self._socket = connection
        self._reader = connection.makefile("rb")

    def _read_answer(self):
        status_line = self._reader.readline(MAX_HEADER_BYTES)
        if not status_line:
            raise Disconnected("the connection closed before the answer")
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise OSError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        status = int(parts[1])
        headers, budget = [], MAX_HEADER_BYTES
        while True:
            line = self._reader.readline(budget)
            budget -= len(line)
            if not line.endswith(b"\n"):
                raise OSError("the answer's header section is too large or was cut off")
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip(" \t")))
        body = self._read_body(status, headers)
        if _value(headers, "connection").lower() == "close":
            self.close()
        return status, headers, body

    def _read_body(self, status, headers):
        if status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in _value(headers, "transfer-encoding").lower():
            return self._read_chunked()
        length = _value(headers, "content-length")
        if length:
            return self._read_exactly(int(length))
        body = self._reader.read()
        self.close()
        return body

    def _read_chunked(self):
        chunks = []
        while True:
            size = int(self._reader.readline(1024).split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while self._reader.readline(MAX_HEADER_BYTES).strip():
                    pass
                return b"".join(chunks)
            chunks.append(self._read_exactly(size))
            self._reader.readline(16)

    def _read_exactly(self, length):
        data = self._reader.read(length)
        if len(data) != length:
            raise OSError("the connection closed inside the answer")
        return data


def encode_head(method, target, headers, framing):
    """A request head: the request line, `Host: kiln`, `headers`, then the `framing` header
    pair (None for none)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: kiln"]
    lines += [f"{name}: {value}" for name, value in headers]
    if framing is not None:
        lines.append(f"{framing[0]}: {framing[1]}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _value(headers, name):
    return next((value for field, value in headers if field.lower() == name), "")
