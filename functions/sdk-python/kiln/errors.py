"""The ways a Kiln function's work can end other than with a result: a handler's own
failure (`Failure`), a durable dispatch cut short (`Interrupt`), and a refusal by the
runtime API (`ApiError`)."""

import json
import traceback

# Longest part of a refusal's body kept in an `ApiError`.
ERROR_BODY_LIMIT = 1024


class Failure(Exception):
    """An error with an explicit error type: `raise Failure("InvalidInput", "no user")`
    makes the caller get `502 function_error` with error type `InvalidInput`; the message
    only goes to Kiln's log. Any raised exception works the same way with its class name
    as the error type; `Failure` just names it."""

    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = str(error_type)
        self.message = str(message)


class Interrupt(Exception):
    """Raised by a durable step when the dispatch cannot go on: the instance was suspended
    (`kind` "suspended": a sleep or wait was answered `202`), the dispatch is stale
    ("fenced": `409 instance_fenced` or `404 unknown_invocation`), or Kiln stopped the
    instance itself ("stopped", e.g. `413 value_too_large`). The serve loop catches it and
    posts nothing, as the contract asks; do not swallow it. Once a dispatch is interrupted,
    every later step raises it again and the workflow's result is not posted."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class ApiError(Exception):
    """The runtime API answered with an unexpected status, e.g. `404 unknown_invocation`
    when the invocation already timed out, or `503 container_retiring` to `next`."""

    def __init__(self, status, body):
        text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
        super().__init__(f"runtime API answered {status}: {text}")
        self.status = status
        self.body = text
        self.code = error_code(body)


def error_type_of(error):
    """The error type to report for an exception: a `Failure`'s type, else the class name."""
    return getattr(error, "error_type", None) or type(error).__name__


def error_message_of(error):
    """The error message to report for an exception."""
    return getattr(error, "message", None) if isinstance(error, (Failure, Interrupt)) else str(error)


def describe_error(error):
    """The exception with its traceback, for the log."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()


def error_code(body):
    """The `error.code` of a `{"error":{"code":"...","message":"..."}}` body, or None."""
    error = _parse(body).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def error_summary(status, body):
    """`code: message` of an error body, or the whole `ApiError` text when it is not one."""
    error = _parse(body).get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        return f"{error['code']}: {error['message']}"
    return str(ApiError(status, body))


def _parse(body):
    try:
        parsed = json.loads(body.decode("utf-8"))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
