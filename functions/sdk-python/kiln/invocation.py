"""One invocation handed to the function by `GET /v1/invocation/next`: the original request
(method, path, query, headers, body) plus Kiln's bookkeeping for it."""

import datetime
import json
import time
import urllib.parse

# Header fields of the `next` answer that describe the runtime message itself, not the
# original request (Kiln's own `kiln-*` fields are left out as well).
MESSAGE_HEADERS = frozenset(
    ["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]
)


class Headers:
    """Request header fields in their original order, repeats kept, looked up without
    regard to case. Values are `str`, each byte one character (Latin-1), so they can be
    sent back unchanged."""

    def __init__(self, pairs=()):
        self._pairs = [(str(name), str(value)) for name, value in pairs]

    def get(self, name, default=None):
        """The first value of `name` (case-insensitive), or `default`."""
        lower = name.lower()
        return next((value for field, value in self._pairs if field.lower() == lower), default)

    def get_all(self, name):
        """Every value of `name` (case-insensitive), in order; empty when absent."""
        lower = name.lower()
        return [value for field, value in self._pairs if field.lower() == lower]

    def items(self):
        """The `(name, value)` pairs, in order."""
        return list(self._pairs)

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.items())

    def __len__(self):
        return len(self._pairs)

    def __repr__(self):
        return f"Headers({self._pairs!r})"


class Invocation:
    """The original request behind one invocation, as a handler receives it."""

    def __init__(self, invocation_id, method="GET", path="/", query=None, headers=(), body=b"",
                 deadline_ms=0, instance_id=None, attempt=0):
        # Kiln's opaque id (`Kiln-Invocation-Id`), which the outcome is posted to.
        self.invocation_id = str(invocation_id)
        # The original method (`Kiln-Method`), e.g. `GET`.
        self.method = method
        # The path after `/fn/{tenant}/{function}` (`Kiln-Path`), from `/`, percent-encoding untouched.
        self.path = path
        # The raw query string without `?` (`Kiln-Query`); None when the URL had none.
        self.query = query
        # The original request headers; no `kiln-*` or framing fields.
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        # The original request body, byte for byte.
        self.body = bytes(body)
        # Unix time in milliseconds at which Kiln gives up (`Kiln-Deadline-Ms`); 0 if unknown.
        self.deadline_ms = deadline_ms
        # The durable instance this dispatch runs (`Kiln-Instance-Id`); None for a plain invocation.
        self.instance_id = instance_id
        # The dispatch's attempt (`Kiln-Instance-Attempt`, from 1); 0 for a plain invocation.
        self.attempt = attempt

    @property
    def is_durable(self):
        """Whether this is a dispatch of a durable instance rather than a plain invocation."""
        return self.instance_id is not None

    @property
    def deadline(self):
        """The deadline as an aware UTC `datetime`, or None when Kiln sent none."""
        if not self.deadline_ms:
            return None
        return datetime.datetime.fromtimestamp(self.deadline_ms / 1000, datetime.timezone.utc)

    def time_left_ms(self):
        """Milliseconds left until the deadline; None when Kiln sent none, 0 once it passed."""
        if not self.deadline_ms:
            return None
        return max(0, self.deadline_ms - int(time.time() * 1000))

    def query_params(self):
        """The query's `(name, value)` pairs with `+` and `%XX` decoded (as UTF-8)."""
        return urllib.parse.parse_qsl(self.query or "", keep_blank_values=True, errors="replace")

    def query_param(self, name, default=None):
        """The first value of query parameter `name` (`""` for a bare `name`), or `default`."""
        return next((value for key, value in self.query_params() if key == name), default)

    def text(self):
        """The body as UTF-8 text, invalid bytes replaced by U+FFFD."""
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON; raises `ValueError` when it is not JSON."""
        return json.loads(self.text())

    @classmethod
    def from_next_answer(cls, headers, body):
        """Builds the invocation from Kiln's answer to `GET /v1/invocation/next`."""
        all_headers = Headers(headers)
        invocation_id = all_headers.get("kiln-invocation-id")
        if not invocation_id:
            raise ValueError("runtime API sent an invocation without a Kiln-Invocation-Id header")
        path = all_headers.get("kiln-path") or "/"
        instance_id = all_headers.get("kiln-instance-id") or None
        # At least 1 on a durable dispatch: the attempt counts this dispatch.
        attempt = 0 if instance_id is None else max(1, _integer(all_headers.get("kiln-instance-attempt")) or 1)
        return cls(
            invocation_id=invocation_id,
            method=all_headers.get("kiln-method") or "GET",
            path=path if path.startswith("/") else "/",
            query=all_headers.get("kiln-query"),
            headers=[(name, value) for name, value in headers if _is_original(name)],
            body=body,
            deadline_ms=max(0, _integer(all_headers.get("kiln-deadline-ms")) or 0),
            instance_id=instance_id,
            attempt=attempt,
        )


def _is_original(name):
    """Whether a header of the `next` answer is one of the original request's."""
    lower = name.lower()
    return not lower.startswith("kiln-") and lower not in MESSAGE_HEADERS


def _integer(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
