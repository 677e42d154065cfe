"""Kiln's function SDK for Python: the function side of `docs/function-contract.md`.

A Kiln function pulls invocations from Kiln over HTTP/1.1 on a Unix socket. `serve` runs
that loop around a handler::

    import kiln
    kiln.serve(lambda request: kiln.text(f"hello, {request.query_param('name', 'world')}"))

A handler answers with `kiln.text`, `kiln.json`, a `Response`, or `kiln.stream` for a body
the caller gets piece by piece as it is produced (server-sent events, progress, tokens of a
long answer). Each item the iterable yields (bytes or str) is sent as one chunk at once::

    def handle(request):
        def events():
            for n in range(1, 4):
                yield f"data: {n}\\n\\n"
                time.sleep(0.2)
        return kiln.stream(events(), content_type="text/event-stream")

An exception raised by the generator cuts the caller's body short (logged, and its class
name reported to Kiln as `Kiln-Stream-Error`); when the caller goes away, the generator is
closed and the next invocation served. A streamed response uses a connection of its own.

Durable instances (`POST /v1/functions/{name}/instances`) may stop at any point and are
then replayed from the start with their input and the results stored so far.
`serve_durable` runs such a workflow; each step of an `Instance` returns its stored result
on replay instead of running again::

    def workflow(instance):
        ticket = instance.checkpoint("open-ticket", lambda: open_ticket(instance.id))
        instance.sleep("a-day", 24 * 3600 * 1000)
        answer = instance.wait_for_event("answered", 3600 * 1000)
        return {"ticket": ticket, "answered": answer is not None}

    kiln.serve_durable(workflow)

`serve_all` serves plain invocations and durable instances from one program; `Runtime`
gives the individual calls for programs that drive the loop themselves (`run*`).
Standard library only; Python 3.9 or newer.
"""

from .errors import ApiError, Failure, Interrupt
from .instance import Instance
from .invocation import Headers, Invocation
from .response import InvalidResponse, Response, json, stream, text
from .runtime import DEFAULT_SOCKET, Runtime
from .serve import run, run_all, run_durable, serve, serve_all, serve_durable

__all__ = [
    "ApiError", "DEFAULT_SOCKET", "Failure", "Headers", "Instance", "Interrupt", "InvalidResponse", "Invocation",
    "Response", "Runtime", "json", "run", "run_all", "run_durable", "serve", "serve_all", "serve_durable", "stream",
    "text",
]
