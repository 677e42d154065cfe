"""Durable dispatches through the SDK's loop against a fake runtime API: replay from stored
checkpoints, suspension by sleep and wait, fencing, and failures."""

import datetime
import time
import unittest

import kiln

from .fake_kiln import durable, plain
from .support import serve_against_fake


def now_ms():
    return int(time.time() * 1000)


class DurableDispatches(unittest.TestCase):
    def test_a_replay_reuses_stored_checkpoints_and_stores_only_the_new_ones(self):
        ran, seen = [], []

        def workflow(instance):
            seen.append((instance.id, instance.attempt, instance.input, instance.invocation_id))
            reservation = instance.checkpoint("reserve", lambda: ran.append("reserve") or {"reservation": "r-new"})
            charge = instance.checkpoint("charge", lambda: ran.append("charge") or {"charge": f"ch-{instance.input['order']}",
                                                                                   "legs": (1, 2)})
            nothing = instance.checkpoint("notify", lambda: ran.append("notify"))
            return {"reservation": reservation, "charge": charge, "nothing": nothing}

        fake, _ = serve_against_fake([durable("9", instance_id="inst-42", attempt=3, input={"order": 42},
                                              checkpoints={"reserve": {"reservation": "r-42"}})], workflow=workflow)
        self.assertEqual(seen, [("inst-42", 3, {"order": 42}, "9")])
        self.assertEqual(ran, ["charge", "notify"], "the stored step did not run again")
        self.assertEqual([post.target for post in fake.posts], [
            "/v1/invocation/9/checkpoint", "/v1/invocation/9/checkpoint", "/v1/invocation/9/response"])
        self.assertEqual(fake.posts[0].json(), {"key": "charge", "value": {"charge": "ch-42", "legs": [1, 2]}})
        self.assertEqual(fake.posts[1].json(), {"key": "notify", "value": None})
        self.assertEqual(fake.posts[2].header("content-type"), "application/json")
        self.assertEqual(fake.posts[2].json(), {"reservation": {"reservation": "r-42"},
                                                "charge": {"charge": "ch-42", "legs": [1, 2]}, "nothing": None})

    def test_a_checkpoint_stored_first_by_another_dispatch_wins(self):
        results = []

        def workflow(instance):
            results.append(instance.checkpoint("pick", lambda: "mine"))
            results.append(instance.checkpoint("pick", lambda: "again"))

        serve_against_fake([durable("1")], workflow=workflow,
                           routes={"checkpoint": lambda _r, _f: {"status": 200, "json": {"value": "theirs"}}})
        self.assertEqual(results, ["theirs", "theirs"])

    def test_a_sleep_answered_202_suspends_and_the_next_invocation_is_served(self):
        caught, after = [], []

        def workflow(instance):
            try:
                instance.sleep("nap", 30_000.2)
            except kiln.Interrupt as interrupt:
                caught.append(interrupt)
                raise
            after.append(instance.invocation_id)
            return {"woke": instance.invocation_id}

        fake, log = serve_against_fake(
            [durable("1"), durable("2", checkpoints={"nap": {"wake_at_ms": now_ms() - 1}})], workflow=workflow,
            routes={"sleep": lambda _r, _f: {"status": 202, "json": {"suspended": True, "wake_at_ms": now_ms() + 60_000}}})
        self.assertEqual([interrupt.kind for interrupt in caught], ["suspended"])
        self.assertEqual([post.target for post in fake.posts], ["/v1/invocation/1/sleep", "/v1/invocation/2/response"],
                         "dispatch 1 posts only its sleep; dispatch 2 finds the past wake time and does not call")
        self.assertEqual(fake.posts[0].json(), {"key": "nap", "duration_ms": 30001})
        self.assertEqual(after, ["2"])
        self.assertEqual(fake.posts[1].json(), {"woke": "2"})
        self.assertEqual(log, [], "a suspension is not worth a log line")

    def test_a_sleep_answered_200_carries_on_and_sleep_until_sends_the_wake_time(self):
        def workflow(instance):
            instance.sleep("short", 5)
            instance.sleep_until("deadline", datetime.datetime.fromtimestamp(1795305600, datetime.timezone.utc))
            instance.sleep_until("deadline-ms", 1795305600000.9)
            return "done"

        fake, _ = serve_against_fake([durable("1")], workflow=workflow,
                                     routes={"sleep": lambda _r, _f: {"status": 200, "json": {"value": {"wake_at_ms": 1}}}})
        self.assertEqual([post.json() for post in fake.posts], [
            {"key": "short", "duration_ms": 5}, {"key": "deadline", "wake_at_ms": 1795305600000},
            {"key": "deadline-ms", "wake_at_ms": 1795305600000}, "done"])

    def test_a_workflow_that_swallows_the_interrupt_posts_nothing_and_later_steps_raise_it_again(self):
        again = []

        def workflow(instance):
            try:
                instance.sleep("nap", 1000)
            except kiln.Interrupt:
                pass
            try:
                instance.checkpoint("after", lambda: "x")
            except kiln.Interrupt as interrupt:
                again.append(interrupt.kind)
            return "should not be posted"

        fake, _ = serve_against_fake([durable("1")], workflow=workflow)
        self.assertEqual(again, ["suspended"])
        self.assertEqual([post.target for post in fake.posts], ["/v1/invocation/1/sleep"])

    def test_a_fenced_call_ends_the_dispatch_without_posting_and_the_loop_goes_on(self):
        after = []

        def checkpoint(request, _fake):
            if request.route[0] == "1":
                return {"status": 409, "json": {"error": {"code": "instance_fenced", "message": "stale dispatch"}}}
            return {"status": 404, "json": {"error": {"code": "unknown_invocation", "message": "timed out"}}}

        def workflow(instance):
            instance.checkpoint("step", lambda: 1)
            after.append(True)
            return "done"

        fake, log = serve_against_fake([durable("1"), durable("2"), plain("3")], handler=lambda _: kiln.text("plain"),
                                       workflow=workflow, routes={"checkpoint": checkpoint})
        self.assertEqual(after, [], "nothing after the fenced step ran")
        self.assertEqual([post.target for post in fake.posts], [
            "/v1/invocation/1/checkpoint", "/v1/invocation/2/checkpoint", "/v1/invocation/3/response"])
        self.assertEqual(len(log), 2)
        self.assertIn("dispatch 1 ended: this dispatch is stale (instance_fenced)", log[0])
        self.assertIn("dispatch 2 ended: this dispatch is stale (unknown_invocation)", log[1])

    def test_wait_for_event_gives_the_payload_none_on_timeout_and_numbers_its_keys_per_name(self):
        answers = {"event:approved:2": {"timed_out": True}, "event:shipped:1": {"event": "shipped"}}
        outcomes = []

        def workflow(instance):
            outcomes.append(instance.wait_for_event("approved", 1000))
            outcomes.append(instance.wait_for_event("approved", 2000))
            outcomes.append(instance.wait_for_event("shipped", 3000.5))
            outcomes.append(instance.stored("event:approved:2"))
            return outcomes

        fake, _ = serve_against_fake(
            [durable("1", checkpoints={"event:approved:1": {"event": "approved", "payload": "stored"}})], workflow=workflow,
            routes={"wait": lambda request, _f: {"status": 200, "json": {"value": answers[request.json()["key"]]}}})
        self.assertEqual(outcomes, ["stored", None, None, {"timed_out": True}])
        self.assertEqual([post.json() for post in fake.posts], [
            {"key": "event:approved:2", "event": "approved", "timeout_ms": 2000},
            {"key": "event:shipped:1", "event": "shipped", "timeout_ms": 3001},
            ["stored", None, None, {"timed_out": True}]])

    def test_a_wait_with_nothing_yet_suspends_the_instance(self):
        after = []

        def workflow(instance):
            payload = instance.wait_for_event("approved", 86_400_000)
            after.append(True)
            return payload

        fake, _ = serve_against_fake([durable("1")], workflow=workflow)
        self.assertEqual(after, [])
        self.assertEqual([(post.target, post.json()) for post in fake.posts], [
            ("/v1/invocation/1/wait", {"key": "event:approved:1", "event": "approved", "timeout_ms": 86_400_000})])

    def test_a_raising_workflow_fails_the_instance_with_the_exception_class(self):
        def work():
            raise ValueError("amount out of range")

        def workflow(instance):
            if instance.invocation_id == "3":
                return {"big": float("nan")}
            if instance.invocation_id == "4":
                return {"when": datetime.date(2024, 1, 1)}
            instance.checkpoint("work", work)
            return "never"

        fake, log = serve_against_fake([durable("1"), durable("2", body="not json"), durable("3"), durable("4")],
                                       workflow=workflow)
        self.assertEqual([(post.target, post.json()["errorType"]) for post in fake.posts], [
            ("/v1/invocation/1/error", "ValueError"), ("/v1/invocation/2/error", "InvalidDispatch"),
            ("/v1/invocation/3/error", "InvalidOutput"), ("/v1/invocation/4/error", "InvalidOutput")])
        self.assertEqual(fake.posts[0].json()["errorMessage"], "amount out of range")
        self.assertRegex(log[0], r"instance inst-1: dispatch 1 failed: Traceback (.*\n)*ValueError: amount out of range")

    def test_store_unavailable_is_retried_then_fails_as_store_unavailable_and_413_stops_the_dispatch(self):
        calls = []
        results = []

        def checkpoint(request, _fake):
            invocation_id = request.route[0]
            calls.append(invocation_id)
            down = {"status": 503, "json": {"error": {"code": "store_unavailable", "message": "down"}}}
            if invocation_id == "1":
                return down if len(calls) < 3 else {"status": 200, "json": {"value": request.json()["value"]}}
            if invocation_id == "2":
                return down
            return {"status": 413, "json": {"error": {"code": "value_too_large", "message": "too big"}}}

        def workflow(instance):
            results.append(instance.checkpoint("step", lambda: instance.invocation_id))
            return results

        fake, _ = serve_against_fake([durable("1"), durable("2"), durable("3")], workflow=workflow,
                                     routes={"checkpoint": checkpoint})
        self.assertEqual([post.target.replace("/v1/invocation/", "") for post in fake.posts], [
            "1/checkpoint", "1/checkpoint", "1/checkpoint", "1/response",
            "2/checkpoint", "2/checkpoint", "2/checkpoint", "2/checkpoint", "2/error", "3/checkpoint"])
        self.assertEqual(results, ["1"])
        self.assertEqual(fake.posts[8].json()["errorType"], "StoreUnavailable")
        self.assertIn("checkpoint: runtime API answered 503", fake.posts[8].json()["errorMessage"])

    def test_a_plain_invocation_to_a_durable_only_function_is_not_durable(self):
        fake, _ = serve_against_fake([plain("p")], workflow=lambda _: "never")
        self.assertEqual(fake.posts[0].target, "/v1/invocation/p/error")
        self.assertEqual(fake.posts[0].json()["errorType"], "NotDurable")


if __name__ == "__main__":
    unittest.main()
