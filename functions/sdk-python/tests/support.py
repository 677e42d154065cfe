"""Shared helpers of the SDK's tests: run a serve loop against a fake Kiln until it retires."""

import kiln

from .fake_kiln import FakeKiln


def serve_against_fake(invocations, handler=None, workflow=None, routes=None, store_retry_delays=(0.001,) * 3):
    """Runs `handler` and/or `workflow` against a fake serving `invocations` until it
    answers `503`; returns the fake (closed, its requests kept) and the SDK's log lines."""
    lines = []
    with FakeKiln(invocations, routes) as fake:
        runtime = kiln.Runtime(fake.socket_path, store_retry_delays=store_retry_delays)
        try:
            kiln.run_all(runtime, handler, workflow, log=lines.append)
        finally:
            runtime.close()
    return fake, lines
