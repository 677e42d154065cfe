"""The example Python Kiln function: answers every invocation with a JSON greeting that
describes the request and the process serving it, and echoes the `x-echo` header if one
was sent. On the path `/stream` it answers a streamed `text/event-stream` body instead:
three server-sent events `data: 1`, `data: 2`, `data: 3`, 200 ms apart."""

import os
import sys
import time

import kiln

# The pause between two events of the `/stream` answer, in seconds.
EVENT_INTERVAL_S = 0.2


def handle(request):
    """On `/stream`, the streamed events (see `events`). Otherwise `200` JSON with the
    greeting, method, path, query, body, uid, working directory and the arguments the
    process was started with; echoes `x-echo`."""
    if request.path == "/stream":
        return kiln.stream(events(), content_type="text/event-stream")
    echo = request.headers.get("x-echo")
    return kiln.json(
        {
            "greeting": os.environ.get("GREETING", "hello from python"),
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.text(),
            "user": os.getuid(),
            "cwd": os.getcwd(),
            "args": sys.argv[1:],
        },
        headers={} if echo is None else {"x-echo": echo},
    )


def events():
    """Three server-sent events, `data: 1` to `data: 3`, each sent as it is produced."""
    for n in range(1, 4):
        if n > 1:
            time.sleep(EVENT_INTERVAL_S)
        yield f"data: {n}\n\n"


# Serve when started as the container's command; tests import the module instead.
if __name__ == "__main__":
    kiln.serve(handle)
