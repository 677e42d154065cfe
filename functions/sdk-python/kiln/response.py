"""The response a function gives for one invocation: `Response`, its `json()`, `text()` and
`stream()` helpers, and its checked encoding into what Kiln is sent. A body is whole (str or
bytes) or streamed (an iterator, e.g. a generator: each item reaches the caller as it is
produced; `streamed.py` sends it)."""

import collections.abc
import json as _json
import re

# Response headers the SDK does not send: it frames the message itself, and Kiln would
# drop them anyway (as it drops every `kiln-*` header).
SDK_OWNED = frozenset(["content-length", "transfer-encoding", "connection", "keep-alive", "host", "te", "trailer"])

# An HTTP token (RFC 9110), the only thing a header name may be.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# A value with a control character (tab allowed) or a character outside Latin-1: it cannot
# be sent verbatim in a header field.
UNSENDABLE_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]")


class InvalidResponse(TypeError):
    """A response Kiln cannot take (bad status, header or body): reported as `InvalidResponse`."""


class Response:
    """What a handler returns: `status` (200-599), `body` and `headers` (a dict whose values
    may be lists for repeated headers, or an iterable of `(name, value)` pairs), sent in order.

    The body is bytes, a str (sent as UTF-8), or an iterator such as a generator: then the
    response is streamed (see `stream()`), each item (bytes or str) sent to the caller as
    one chunk as soon as it is produced."""

    def __init__(self, status=200, body=b"", headers=None):
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def streamed(self):
        """Whether the body is streamed (an iterator) rather than whole."""
        return isinstance(self.body, collections.abc.Iterator)

    def __repr__(self):
        return f"Response({self.status!r}, {self.body!r}, {self.headers!r})"


def json(value, status=200, headers=None):
    """A JSON response: `value` serialized compactly, `content-type: application/json`
    unless `headers` sets a content type."""
    body = _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _with_content_type("application/json", body, status, headers)


def text(value, status=200, headers=None):
    """A `text/plain; charset=utf-8` response (unless `headers` sets a content type)."""
    return _with_content_type("text/plain; charset=utf-8", str(value), status, headers)


def stream(chunks, status=200, headers=None, content_type="application/octet-stream"):
    """A streamed response: the status and headers reach the caller at once, then each item
    of `chunks` (any iterable, typically a generator, of bytes or str) as one chunk as soon as
    it is produced. `content-type` is `content_type` unless `headers` sets one::

        def events():
            for n in range(3):
                yield f"data: {n}\\n\\n"
                time.sleep(1)

        return kiln.stream(events(), content_type="text/event-stream")

    An exception raised while producing the items ends the body early: the caller's
    connection is cut (the body is not whole), the exception goes to the log and its class
    name to Kiln (`Kiln-Stream-Error`). When the caller goes away (or Kiln cuts the stream
    for idling or running too long) the SDK stops asking for items, closes the generator
    (its `finally` blocks run) and serves the next invocation."""
    if isinstance(chunks, (str, bytes, bytearray, memoryview, collections.abc.Mapping)) or \
            not isinstance(chunks, collections.abc.Iterable):
        raise TypeError(f"kiln.stream() takes an iterable of bytes or str chunks, not {type(chunks).__name__}")
    return _with_content_type(content_type, iter(chunks), status, headers)


def chunk_bytes(item):
    """One item of a streamed body as bytes (a str as UTF-8). Raises `InvalidResponse`."""
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise InvalidResponse(f"a streamed body produced {type(item).__name__}; give str or bytes chunks")


def encode_response(response):
    """Checks a handler's response and turns it into `(status, header pairs, body)` without
    the SDK-owned headers; the body is bytes, or the iterator of a streamed response.
    Raises `InvalidResponse`."""
    if not isinstance(response, Response):
        raise InvalidResponse(
            f"the handler returned {type(response).__name__}, not a kiln.Response (see kiln.json() and kiln.text())"
        )
    status = response.status
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise InvalidResponse(f"response status {status!r} is not an integer in 200-599")
    headers = []
    for name, value in header_pairs(response.headers):
        if not TOKEN.fullmatch(name):
            raise InvalidResponse(f"bad header name {name!r}")
        if UNSENDABLE_VALUE.search(value):
            raise InvalidResponse(f"header {name} has a control or non-Latin-1 character in its value")
        lower = name.lower()
        if not lower.startswith("kiln-") and lower not in SDK_OWNED:
            headers.append((name, value))
    return status, headers, response.body if response.streamed else _body_bytes(response.body)


def header_pairs(headers):
    """`(name, value)` string pairs of a headers dict or iterable of pairs, in order."""
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [
            (str(name), _header_value(name, one))
            for name, value in headers.items()
            for one in (value if isinstance(value, (list, tuple)) else [value])
        ]
    if isinstance(headers, (str, bytes)):
        raise InvalidResponse("response headers are a string, not a dict or (name, value) pairs")
    pairs = []
    for pair in headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidResponse(f"response header {pair!r} is not a (name, value) pair")
        pairs.append((str(pair[0]), _header_value(pair[0], pair[1])))
    return pairs


def _header_value(name, value):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidResponse(f"header {name} has the value {value!r}, not a str or int")
    return str(value)


def _body_bytes(body):
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise InvalidResponse(f"response body is {type(body).__name__}; give str, bytes or an iterator "
                          "(kiln.json() serializes values, kiln.stream() streams)")


def _with_content_type(content_type, body, status, headers):
    pairs = header_pairs(headers)
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.insert(0, ("content-type", content_type))
    return Response(status, body, pairs)
