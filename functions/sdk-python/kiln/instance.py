"""One durable dispatch as its workflow sees it: the instance's input and stored
checkpoints, and the steps (checkpoint, sleep, wait for an event) that reuse them on replay."""

import datetime
import json
import math
import time

from .errors import Failure, Interrupt


class Instance:
    """One dispatch of a durable instance. Kiln replays the workflow from the start on
    every dispatch; each step below returns its stored result when the dispatch has one,
    and does the work (and stores it) only when it does not. Ask for the same keys in the
    same order on every replay.

    A step raises an `Interrupt` when the dispatch cannot go on (the instance went to
    sleep, the dispatch is stale): let it propagate, the serve loop ends the dispatch."""

    def __init__(self, runtime, invocation):
        """The instance behind durable dispatch `invocation`, making its calls over
        `runtime`. Raises `Failure` `NotDurable` for a plain invocation and
        `InvalidDispatch` when the body is not `{"input": ..., "checkpoints": {...}}`."""
        if not invocation.is_durable:
            raise Failure("NotDurable", "this invocation is not a durable instance dispatch")
        dispatch_input, checkpoints = _parse_dispatch(invocation.body)
        # The connection the durable calls go over.
        self._runtime = runtime
        # Every checkpoint this dispatch knows: those Kiln sent with it plus those stored since.
        self._checkpoints = dict(checkpoints)
        # How often each event name has been waited for in this dispatch: it numbers the wait keys.
        self._waits = {}
        # The `Interrupt` that ended this dispatch, if one did: every later step raises it again.
        self._interrupt = None
        # The dispatch's invocation id, which durable calls are addressed to.
        self.invocation_id = invocation.invocation_id
        # The instance id (`Kiln-Instance-Id`), the same on every dispatch: a good idempotency key.
        self.id = invocation.instance_id
        # How many times the instance has been dispatched, this one included (from 1).
        self.attempt = invocation.attempt
        # The instance's input, as given when it was started.
        self.input = dispatch_input
        # The invocation this dispatch came as (deadline in `deadline_ms`).
        self.invocation = invocation

    @property
    def interrupted(self):
        """The `Interrupt` that ended this dispatch, or None while it goes on."""
        return self._interrupt

    def stored(self, key, default=None):
        """The value stored under `key`, or `default` when this dispatch knows none. The
        sleep and wait keys hold Kiln's own values (`{"wake_at_ms": ...}`, `{"event": ...}`)."""
        return self._checkpoints.get(key, default)

    def checkpoint(self, key, work):
        """A step whose result is stored under `key`: the stored result when there is one
        (and `work()` does not run), otherwise `work()`'s result, stored before it is
        returned. If another dispatch stored the key first, its value is returned: the
        first write wins. Either way the result is the stored JSON value (tuples come back
        as lists), so the first run and every replay see the same thing.

        `work` may run more than once across dispatches (if the container dies before the
        result is stored), so make it idempotent. An exception raised by `work` fails the
        instance."""
        self._check_live()
        if key in self._checkpoints:
            return self._checkpoints[key]
        result = work()
        try:
            value = json.loads(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise Failure("BadCheckpoint", f"checkpoint `{key}` cannot be stored as JSON: {error}") from error
        stored = self._call(lambda: self._runtime.checkpoint(self.invocation_id, key, value))
        return self._checkpoints.setdefault(key, stored)

    def sleep(self, key, ms):
        """Sleeps `ms` milliseconds from the first time Kiln sees `key`. Returns at once
        when the stored wake time has passed; otherwise the instance is suspended (this
        raises an `Interrupt`) and replayed after the wake time, its container free meanwhile."""
        self._sleep(key, duration_ms=_whole_ms(ms, "sleep duration", math.ceil))

    def sleep_until(self, key, at):
        """Like `sleep`, until `at` (Unix milliseconds or an aware `datetime`)."""
        unix_ms = at.timestamp() * 1000 if isinstance(at, datetime.datetime) else at
        self._sleep(key, wake_at_ms=_whole_ms(unix_ms, "wake time", math.floor))

    def wait_for_event(self, name, timeout_ms):
        """Waits for an event signal named `name` (`POST /v1/instances/{id}/signals`) for
        at most `timeout_ms` from the first time this wait is reached: returns the event's
        payload (None when it had none), or None when the timeout passed first (look at
        `stored(key)` to tell the two apart). Until an event arrives the instance is
        suspended (this raises an `Interrupt`) and replayed when it does.

        The wait is stored under key `event:{name}:{n}`, where `n` counts the waits for
        `name` in this dispatch from 1."""
        self._check_live()
        count = self._waits.get(name, 0) + 1
        self._waits[name] = count
        key = f"event:{name}:{count}"
        if key in self._checkpoints:
            return _event_outcome(key, self._checkpoints[key])
        timeout = _whole_ms(timeout_ms, "wait timeout", math.ceil)
        reply = self._call(lambda: self._runtime.wait(self.invocation_id, key, name, timeout))
        if reply["suspended"]:
            raise self._end(Interrupt("suspended", f"the instance waits for event `{name}`"))
        self._checkpoints[key] = reply["value"]
        return _event_outcome(key, reply["value"])

    def _sleep(self, key, duration_ms=None, wake_at_ms=None):
        self._check_live()
        stored = self._checkpoints.get(key)
        wake = stored.get("wake_at_ms") if isinstance(stored, dict) else None
        if isinstance(wake, (int, float)) and wake <= time.time() * 1000:
            return
        reply = self._call(lambda: self._runtime.sleep(self.invocation_id, key, duration_ms, wake_at_ms))
        if reply["suspended"]:
            raise self._end(Interrupt("suspended", f"the instance sleeps (`{key}`) until {reply['wake_at_ms']}"))
        self._checkpoints[key] = reply["value"]

    def _call(self, call):
        """Runs a durable call; an `Interrupt` it raises ends the dispatch."""
        try:
            return call()
        except Interrupt as interrupt:
            raise self._end(interrupt) from None

    def _end(self, interrupt):
        self._interrupt = self._interrupt or interrupt
        return self._interrupt

    def _check_live(self):
        if self._interrupt is not None:
            raise self._interrupt


def _parse_dispatch(body):
    """The `(input, checkpoints)` of a durable dispatch's `{"input", "checkpoints"}` body."""
    try:
        dispatch = json.loads(body.decode("utf-8"))
    except ValueError as error:
        raise _invalid_dispatch(str(error)) from None
    if not isinstance(dispatch, dict):
        raise _invalid_dispatch("it is not an object")
    checkpoints = dispatch.get("checkpoints") or {}
    if not isinstance(checkpoints, dict):
        raise _invalid_dispatch("its checkpoints are not an object")
    return dispatch.get("input"), checkpoints


def _invalid_dispatch(why):
    return Failure("InvalidDispatch", f'the dispatch body is not {{"input": ..., "checkpoints": {{...}}}}: {why}')


def _event_outcome(key, stored):
    """A stored wait: `{"event": ..., "payload": p}` is `p`, `{"timed_out": true}` is None."""
    if isinstance(stored, dict) and "event" in stored:
        return stored.get("payload")
    if isinstance(stored, dict) and stored.get("timed_out") is True:
        return None
    raise Failure("BadCheckpoint", f"checkpoint `{key}` holds {json.dumps(stored)}, which is not the outcome of a wait")


def _whole_ms(ms, what, round_to_int):
    """A non-negative whole number of milliseconds, rounded with `round_to_int`."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or math.isnan(ms):
        raise TypeError(f"the {what} must be a number of milliseconds, not {type(ms).__name__}")
    if math.isinf(ms):
        return 0 if ms < 0 else 2**53 - 1
    return max(0, min(int(round_to_int(ms)), 2**53 - 1))
