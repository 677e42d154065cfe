"""The response a function gives for one invocation: `Response`, its `json()` and `text()`
helpers, and its checked encoding into what Kiln is sent."""

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
    """What a handler returns: `status` (200-599), `body` (bytes, or a str sent as UTF-8)
    and `headers` (a dict whose values may be lists for repeated headers, or an iterable
    of `(name, value)` pairs), sent in order."""

    def __init__(self, status=200, body=b"", headers=None):
        self.status = status
        self.body = body
        self.headers = headers

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


def encode_response(response):
    """Checks a handler's response and turns it into `(status, header pairs, body bytes)`
    without the SDK-owned headers. Raises `InvalidResponse`."""
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
    return status, headers, _body_bytes(response.body)


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
    raise InvalidResponse(f"response body is {type(body).__name__}; give str or bytes (kiln.json() serializes values)")


def _with_content_type(content_type, body, status, headers):
    pairs = header_pairs(headers)
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.insert(0, ("content-type", content_type))
    return Response(status, body, pairs)
