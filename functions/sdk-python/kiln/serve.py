"""The serve loops: pull invocations from the runtime API one at a time, run the handler
(plain invocations) or the workflow (durable dispatches), and post each outcome."""

import json
import sys

from .errors import ApiError, Interrupt, describe_error, error_message_of, error_type_of
from .instance import Instance
from .response import InvalidResponse, Response
from .runtime import Runtime, stderr_log


def serve(handler):
    """Serves plain invocations with `handler(invocation) -> Response` on the runtime
    socket from the environment, until Kiln retires the container (exit code 0) or the
    runtime socket fails (a line on stderr, exit code 1). Durable dispatches get error type
    `NotDurable` (see `serve_all`). Never returns."""
    _check_callable(handler, "handler")
    _serve_with(lambda runtime: run(runtime, handler))


def serve_durable(workflow):
    """Like `serve`, for durable instances: each dispatch runs `workflow(instance)` (see
    `Instance`), whose result (any JSON value) is the instance's output. Plain invocations
    get error type `NotDurable`."""
    _check_callable(workflow, "workflow")
    _serve_with(lambda runtime: run_durable(runtime, workflow))


def serve_all(handler, workflow):
    """Like `serve`, for a function that answers plain invocations with `handler` and runs
    durable instances with `workflow`."""
    _check_callable(handler, "handler")
    _check_callable(workflow, "workflow")
    _serve_with(lambda runtime: run_all(runtime, handler, workflow))


def run(runtime, handler, log=None):
    """Serves plain invocations from `runtime` with `handler`, one at a time:

    - the returned `Response` is posted; one Kiln cannot take (status outside 200-599, bad
      header, body neither str, bytes nor an iterator, not a `Response`) is reported as
      `InvalidResponse`;
    - a streamed response (`kiln.stream()`) is sent chunk by chunk as it is produced; an
      exception raised while producing it goes to the log and ends the body with its class
      name as `Kiln-Stream-Error` (the caller's connection is cut); serving goes on;
    - a raised exception is reported to the error endpoint with its class name as the error
      type (a `Failure`'s own type) and its traceback goes to the log; serving goes on;
    - a durable dispatch is reported as error type `NotDurable`;
    - when Kiln refuses a posted outcome (e.g. `404`: the invocation already timed out), or
      stops taking a streamed one (`410 caller_gone`, `408 stream_cut`), a line goes to the
      log and serving goes on.

    Returns when Kiln answers `503` to `next` (the container is retiring); raises when the
    runtime socket fails or answers `next` unexpectedly. `log(line)` gets the SDK's own
    lines (default: stderr, which Kiln attributes to the invocation being served)."""
    _run_loop(runtime, handler, None, log)


def run_durable(runtime, workflow, log=None):
    """Runs durable dispatches from `runtime` with `workflow`, like `run`: the returned
    output is posted as JSON and the instance completes with it; a raised exception fails
    the instance; a dispatch ended by an `Interrupt` posts nothing, even if the workflow
    caught the interrupt and returned; a plain invocation is reported as `NotDurable`."""
    _run_loop(runtime, None, workflow, log)


def run_all(runtime, handler, workflow, log=None):
    """`run` for plain invocations and `run_durable` for durable dispatches, in one loop."""
    _run_loop(runtime, handler, workflow, log)


def _run_loop(runtime, handler, workflow, log):
    log = log or stderr_log
    while True:
        try:
            invocation = runtime.next()
        except ApiError as error:
            if error.status == 503:
                return
            raise
        invocation_id = invocation.invocation_id
        try:
            if not invocation.is_durable and handler:
                _handle_plain(runtime, invocation, handler, log)
            elif invocation.is_durable and workflow:
                _handle_durable(runtime, invocation, workflow, log)
            elif invocation.is_durable:
                runtime.fail(invocation_id, "NotDurable", "this function does not serve durable instances")
            else:
                runtime.fail(invocation_id, "NotDurable", "this function serves durable instances only, not plain invocations")
        except ApiError as error:
            log(f"invocation {invocation_id}: Kiln did not take the outcome: {error}")


def _handle_plain(runtime, invocation, handler, log):
    """Runs one plain invocation and posts its outcome."""
    invocation_id = invocation.invocation_id
    try:
        response = handler(invocation)
    except Exception as error:
        log(f"invocation {invocation_id}: the handler failed: {describe_error(error)}")
        runtime.fail(invocation_id, error_type_of(error), error_message_of(error))
        return
    try:
        runtime.respond(invocation_id, response, log)
    except InvalidResponse as error:
        log(f"invocation {invocation_id}: unusable response: {error}")
        runtime.fail(invocation_id, "InvalidResponse", str(error))


def _handle_durable(runtime, invocation, workflow, log):
    """Runs one durable dispatch and posts its outcome, if it has one to post."""
    invocation_id = invocation.invocation_id
    try:
        instance = Instance(runtime, invocation)
    except Exception as failure:
        runtime.fail(invocation_id, error_type_of(failure), error_message_of(failure))
        return
    raised = None
    try:
        output = workflow(instance)
    except Exception as error:
        raised = error
    interrupt = instance.interrupted or (raised if isinstance(raised, Interrupt) else None)
    if interrupt is not None:
        if interrupt.kind != "suspended":
            log(f"instance {instance.id}: dispatch {invocation_id} ended: {interrupt}")
        return
    if raised is not None:
        log(f"instance {instance.id}: dispatch {invocation_id} failed: {describe_error(raised)}")
        runtime.fail(invocation_id, error_type_of(raised), error_message_of(raised))
        return
    try:
        body = json.dumps(output, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        runtime.fail(invocation_id, "InvalidOutput", f"the output cannot be serialized as JSON: {error}")
        return
    runtime.respond(invocation_id, Response(200, body, [("content-type", "application/json")]))


def _serve_with(serve_loop):
    """Connects from the environment, runs `serve_loop` and exits as `serve` describes."""
    runtime = Runtime.from_env()
    try:
        serve_loop(runtime)
    except Exception as error:
        sys.stderr.write(f"kiln-sdk: runtime API failed: {error}; exiting\n")
        sys.exit(1)
    sys.stderr.write("kiln-sdk: Kiln is retiring this container; exiting\n")
    sys.exit(0)


def _check_callable(value, what):
    if not callable(value):
        raise TypeError(f"the {what} must be callable, not {type(value).__name__}")
