"""The example Python Kiln function: answers every invocation with a JSON greeting that
describes the request and the process serving it, and echoes the `x-echo` header if one
was sent."""

import os
import sys

import kiln


def handle(request):
    """`200` JSON with the greeting, method, path, query, body, uid, working directory and
    the arguments the process was started with; echoes `x-echo`."""
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


# Serve when started as the container's command; tests import the module instead.
if __name__ == "__main__":
    kiln.serve(handle)
