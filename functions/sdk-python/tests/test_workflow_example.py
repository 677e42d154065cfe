"""The functions/python-workflow example (the twin of functions/order-workflow) through the
SDK's loop, against a fake Kiln that keeps one instance's checkpoints, sleeps, waits and
events across dispatches: an approved order is charged in three dispatches, an unapproved
one expires and releases its reservation."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python-workflow"))

import workflow  # noqa: E402  (functions/python-workflow/workflow.py)

from .fake_kiln import durable  # noqa: E402
from .support import serve_against_fake  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


class FakeInstance:
    """Plays Kiln's side of one instance as the contract describes it: checkpoints (first
    write wins), sleeps and waits whose wake times and deadlines are fixed by their first
    call, events kept until a wait consumes them. `advance(ms)` moves the clock on by
    shifting every stored time back; `dispatch()` replays the workflow with the
    checkpoints stored so far."""

    def __init__(self, input):
        self.input = input
        self.store = {}
        self.deadlines = {}
        self.events = []
        self.dispatches = 0
        self.status = "pending"
        self.waiting_for = None
        self.output = None
        self.error = None

    def dispatch(self):
        """One dispatch; returns its durable calls and outcome as `(verb, body)` pairs."""
        self.dispatches += 1
        self.status, self.waiting_for = "running", None
        routes = {"checkpoint": self._checkpoint, "sleep": self._sleep, "wait": self._wait}
        fake, _ = serve_against_fake([durable(str(self.dispatches), instance_id="inst-42", attempt=self.dispatches,
                                              input=self.input, checkpoints=dict(self.store))],
                                     workflow=workflow.workflow, routes=routes)
        calls = [(post.route[1], post.json()) for post in fake.posts]
        for verb, body in calls:
            if verb == "response":
                self.status, self.output = "completed", body
            elif verb == "error":
                self.status, self.error = "failed", body
        return calls

    def signal(self, name, payload):
        self.events.append((name, payload))

    def advance(self, ms):
        for value in self.store.values():
            if isinstance(value, dict) and "wake_at_ms" in value:
                value["wake_at_ms"] -= ms
        for key in self.deadlines:
            self.deadlines[key] -= ms

    def _checkpoint(self, request, _fake):
        sent = request.json()
        return {"status": 200, "json": {"value": self.store.setdefault(sent["key"], sent["value"])}}

    def _sleep(self, request, _fake):
        sent = request.json()
        wake = self.store.setdefault(sent["key"], {"wake_at_ms": now_ms() + sent["duration_ms"]})["wake_at_ms"]
        if wake > now_ms():
            self.status = "sleeping"
            return {"status": 202, "json": {"suspended": True, "wake_at_ms": wake}}
        return {"status": 200, "json": {"value": self.store[sent["key"]]}}

    def _wait(self, request, _fake):
        sent = request.json()
        key, name = sent["key"], sent["event"]
        deadline = self.deadlines.setdefault(key, now_ms() + sent["timeout_ms"])
        if key not in self.store:
            event = next((event for event in self.events if event[0] == name), None)
            if event is not None:
                self.events.remove(event)
                self.store[key] = {"event": name, "payload": event[1]}
            elif deadline <= now_ms():
                self.store[key] = {"timed_out": True}
            else:
                self.status, self.waiting_for = "sleeping", name
                return {"status": 202, "json": {"suspended": True, "wake_at_ms": deadline}}
        return {"status": 200, "json": {"value": self.store[key]}}


class WorkflowExample(unittest.TestCase):
    def test_an_approved_order_is_reserved_cooled_off_and_charged_in_three_dispatches(self):
        instance = FakeInstance({"order": 42, "amount_cents": 1999, "cool_off_s": 1})

        self.assertEqual(instance.dispatch(), [
            ("checkpoint", {"key": "reserve", "value": {"reservation": "r-42"}}),
            ("sleep", {"key": "cool-off", "duration_ms": 1000}),
        ])
        self.assertEqual((instance.status, instance.waiting_for), ("sleeping", None))

        instance.advance(1000)
        self.assertEqual(instance.dispatch(), [
            ("wait", {"key": "event:approved:1", "event": "approved", "timeout_ms": 3_600_000}),
        ], "the stored reservation and the past cool-off make no call")
        self.assertEqual((instance.status, instance.waiting_for), ("sleeping", "approved"))
        self.assertEqual(instance.store["reserve"], {"reservation": "r-42"})

        instance.signal("approved", {"by": "ana"})
        output = {"order": 42, "status": "charged", "reservation": "r-42", "charge": "ch-42", "approved_by": "ana"}
        self.assertEqual(instance.dispatch(), [
            ("wait", {"key": "event:approved:1", "event": "approved", "timeout_ms": 3_600_000}),
            ("checkpoint", {"key": "charge", "value": {"charge": "ch-42", "amount_cents": 1999}}),
            ("response", output),
        ])
        self.assertEqual(instance.status, "completed")
        self.assertEqual(instance.output, output)
        self.assertEqual(instance.dispatches, 3, "reserve+sleep, wait, charge")
        self.assertNotIn("release", instance.store)

        self.assertEqual(instance.dispatch()[-1], ("response", output), "a replay from storage gives the same output")

    def test_an_order_without_an_approval_in_time_releases_its_reservation_and_expires(self):
        instance = FakeInstance({"order": "A-7", "amount_cents": 5, "cool_off_s": 1, "approval_timeout_s": 2})
        instance.dispatch()
        instance.advance(1000)
        self.assertEqual(instance.dispatch(), [
            ("wait", {"key": "event:approved:1", "event": "approved", "timeout_ms": 2000}),
        ])
        self.assertEqual(instance.waiting_for, "approved")

        instance.advance(2000)
        self.assertEqual(instance.dispatch(), [
            ("wait", {"key": "event:approved:1", "event": "approved", "timeout_ms": 2000}),
            ("checkpoint", {"key": "release", "value": {"released": "r-A-7"}}),
            ("response", {"order": "A-7", "status": "expired"}),
        ])
        self.assertEqual(instance.status, "completed")
        self.assertEqual(instance.store["event:approved:1"], {"timed_out": True})
        self.assertNotIn("charge", instance.store)

    def test_an_approval_sent_early_is_consumed_and_one_without_a_payload_still_charges(self):
        instance = FakeInstance({"order": 7, "amount_cents": 1})
        self.assertEqual(instance.dispatch()[-1], ("sleep", {"key": "cool-off", "duration_ms": 5000}))
        instance.signal("approved", None)
        instance.advance(5000)
        instance.dispatch()
        self.assertEqual(instance.output, {"order": 7, "status": "charged", "reservation": "r-7", "charge": "ch-7",
                                           "approved_by": None})
        self.assertEqual(instance.dispatches, 2, "the wait found the approval at once")

    def test_a_bad_input_fails_the_instance_with_invalid_input(self):
        for bad in ({"order": 42}, {"amount_cents": 1}, {"order": 1, "amount_cents": -1},
                    {"order": 1, "amount_cents": 1.5}, {"order": 1, "amount_cents": True},
                    {"order": 1, "amount_cents": 1, "cool_off_s": None}, "42", None):
            instance = FakeInstance(bad)
            calls = instance.dispatch()
            self.assertEqual([verb for verb, _ in calls], ["error"], bad)
            self.assertEqual(instance.error["errorType"], "InvalidInput", bad)
            self.assertIn('the input must be {"order": id, "amount_cents": n}', instance.error["errorMessage"])
        instance = FakeInstance({"order": {"id": 3}, "amount_cents": 0, "extra": "ignored"})
        self.assertEqual(instance.dispatch()[0][1]["value"], {"reservation": 'r-{"id":3}'},
                         "a non-string order appears as compact JSON")


if __name__ == "__main__":
    unittest.main()
