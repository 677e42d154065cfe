"""Streamed responses through the SDK's loop against a fake runtime API: each item sent as
one chunk as it is produced, the chunked head on a connection of its own, a failing body
ended by a `Kiln-Stream-Error` trailer, and Kiln stopping the stream (`410`, `408`, a
closed connection) with serving going on."""

import unittest
from unittest import mock

import kiln
from kiln.connection import Connection

from .fake_kiln import FakeKiln, plain


class NotFound(Exception):
    pass


class Ärger(Exception):
    """An exception whose class name is not an HTTP token."""


def serve_streams(invocations, handler_for, routes=None):
    """Runs the handler `handler_for(fake)` against a fake serving `invocations` until it
    retires the container; returns the fake (closed, its requests kept) and the log lines."""
    lines = []
    with FakeKiln(invocations, routes) as fake:
        runtime = kiln.Runtime(fake.socket_path)
        try:
            kiln.run(runtime, handler_for(fake), log=lines.append)
        finally:
            runtime.close()
    return fake, lines


def response_post(fake, invocation_id):
    """The recorded response post of `invocation_id` (in progress or done), or None."""
    return next((post for post in fake.posts if post.route == (invocation_id, "response")), None)


def chunks_of(fake, invocation_id):
    """The chunks Kiln has of `invocation_id`'s response so far ([] before its head arrived)."""
    post = response_post(fake, invocation_id)
    return [] if post is None else list(post.chunks or [])


def was_cut(fake, invocation_id):
    """Whether the fake answered `invocation_id`'s response mid-body and shut its connection."""
    post = response_post(fake, invocation_id)
    return post is not None and post.cut


def refusal(status, code):
    return {"status": status, "json": {"error": {"code": code, "message": f"the stream is over ({code})"}}}


class StreamedResponses(unittest.TestCase):
    def test_each_item_reaches_kiln_as_one_chunk_before_the_next_is_produced(self):
        arrived_first = []

        def handler_for(fake):
            def handler(request):
                def body():
                    yield b"one"
                    fake.wait_until(lambda: chunks_of(fake, "1") == [b"one"])
                    arrived_first.append("one")
                    yield "twö"
                    yield b""
                    fake.wait_until(lambda: len(chunks_of(fake, "1")) == 2)
                    arrived_first.append("twö")
                    yield bytearray(b"three")
                    yield memoryview(b"x" * 20_000)
                return kiln.stream(body(), status=201)
            return handler

        fake, log = serve_streams([plain("1")], handler_for)
        posted = response_post(fake, "1")
        self.assertEqual(arrived_first, ["one", "twö"], "each chunk arrived before the next item was produced")
        self.assertEqual(posted.chunks, [b"one", "twö".encode(), b"three", b"x" * 20_000],
                         "one chunk per non-empty item, in order; the empty item sent nothing")
        self.assertIsNone(posted.framing_error)
        self.assertTrue(posted.complete, "the body ended with the last chunk")
        self.assertEqual(posted.trailers, [])
        self.assertEqual(posted.header("kiln-status"), "201")
        self.assertEqual(log, [], "Kiln answered 202: nothing to log")

    def test_the_head_is_chunked_without_content_length_on_a_fresh_connection_for_each_stream(self):
        def handler_for(_fake):
            def handler(request):
                if request.invocation_id == "1":
                    return kiln.stream([b"a", b"b"], headers=[("x-a", "1"), ("Content-Length", "9"),
                                                              ("kiln-status", "500"), ("Transfer-Encoding", "gzip")])
                if request.invocation_id == "2":
                    return kiln.text("whole")
                return kiln.Response(202, iter(["c"]), {"content-type": "text/event-stream"})
            return handler

        fake, _ = serve_streams([plain("1"), plain("2"), plain("3")], handler_for)
        first, second, third = fake.posts
        self.assertEqual(first.header("transfer-encoding"), "chunked")
        self.assertIsNone(first.header("content-length"))
        self.assertEqual(first.header_values("kiln-status"), ["200"])
        self.assertEqual(first.header("content-type"), "application/octet-stream")
        self.assertEqual(first.header("x-a"), "1")
        self.assertEqual(first.header("host"), "kiln")
        self.assertEqual((first.chunks, first.complete), ([b"a", b"b"], True))
        self.assertEqual((second.header("content-length"), second.chunks, second.body), ("5", None, b"whole"))
        self.assertEqual(third.header("content-type"), "text/event-stream")
        self.assertEqual((third.header("kiln-status"), third.chunks), ("202", [b"c"]))
        self.assertEqual({request.connection for request in fake.requests if request.route[1] == "next"}, {1})
        self.assertEqual([first.connection, second.connection, third.connection], [2, 1, 3],
                         "each stream on a connection of its own; whole responses on the kept one")
        self.assertEqual(fake.connections, 3)

    def test_a_failing_body_ends_with_the_error_trailer_and_serving_goes_on(self):
        closed = []

        def body(invocation_id):
            try:
                if invocation_id == "1":
                    yield b"a"
                    raise NotFound("no more")
                if invocation_id == "2":
                    raise kiln.Failure("QuotaExceeded", "out of tokens")
                if invocation_id == "3":
                    yield b"b"
                    raise Ärger("not a token")
                yield b"c"
                yield 42
                yield b"never sent"
            finally:
                closed.append(invocation_id)

        def handler_for(_fake):
            return lambda request: (kiln.text("fine") if request.invocation_id == "ok"
                                    else kiln.stream(body(request.invocation_id)))

        fake, log = serve_streams([plain("1"), plain("2"), plain("3"), plain("4"), plain("ok")], handler_for)
        self.assertEqual([post.target for post in fake.posts],
                         [f"/v1/invocation/{n}/response" for n in ("1", "2", "3", "4", "ok")],
                         "nothing goes to /error: the head was sent already")
        streams = fake.posts[:4]
        self.assertEqual([post.trailer("kiln-stream-error") for post in streams],
                         ["NotFound", "QuotaExceeded", "StreamFailed", "InvalidResponse"])
        self.assertEqual([post.chunks for post in streams], [[b"a"], [], [b"b"], [b"c"]])
        self.assertTrue(all(post.complete for post in streams))
        self.assertEqual(closed, ["1", "2", "3", "4"])
        self.assertEqual(fake.posts[4].body, b"fine")
        self.assertEqual(len(log), 4, log)
        self.assertRegex(log[0], r"^invocation 1: the streamed body failed: Traceback .*\n(.*\n)*.*NotFound: no more$")
        self.assertRegex(log[3], r"(?s)^invocation 4: the streamed body failed: Traceback .*InvalidResponse: a streamed body produced int")

    def test_kiln_stopping_the_stream_closes_the_body_and_the_next_invocation_is_served(self):
        for status, code in ((410, "caller_gone"), (408, "stream_cut")):
            with self.subTest(code):
                produced, closed = [], []

                def cut_after_first(request, _fake):
                    return refusal(status, code) if request.route[0] == "1" and len(request.chunks) == 1 else None

                def handler_for(fake):
                    def body(invocation_id):
                        try:
                            for item in (b"a", b"b", b"c"):
                                produced.append((invocation_id, item))
                                yield item
                                if invocation_id == "1":
                                    fake.wait_until(lambda: was_cut(fake, "1"))
                        finally:
                            closed.append(invocation_id)
                    return lambda request: kiln.stream(body(request.invocation_id))

                fake, log = serve_streams([plain("1"), plain("2")], handler_for, routes={"chunk": cut_after_first})
                cut, served = fake.posts
                self.assertEqual((cut.chunks, cut.complete, cut.cut), ([b"a"], False, True))
                self.assertEqual([item for n, item in produced if n == "1"], [b"a", b"b"],
                                 "no item is asked for once Kiln stopped taking the body")
                self.assertEqual(closed, ["1", "2"], "the cut generator was closed")
                self.assertEqual(len(log), 1, log)
                self.assertRegex(log[0], rf"^invocation 1: Kiln did not take the outcome: runtime API answered {status}: .*{code}")
                self.assertEqual((served.chunks, served.complete), ([b"a", b"b", b"c"], True))
                self.assertNotIn(served.connection, (1, cut.connection), "the next stream has a fresh connection")
                self.assertEqual(fake.requests[-1].route, (None, "next"), "the loop went on until Kiln retired it")

    def test_an_answer_before_the_body_ended_stops_the_body_while_the_connection_is_still_open(self):
        produced = []

        def answer_after_first(request, _fake):
            return dict(refusal(410, "caller_gone"), keep_open=True) if len(request.chunks) == 1 else None

        def handler_for(fake):
            def body():
                for item in (b"a", b"b", b"c"):
                    produced.append(item)
                    yield item
                    fake.wait_until(lambda: was_cut(fake, "1"))
            return lambda request: kiln.stream(body()) if request.invocation_id == "1" else kiln.text("next")

        fake, log = serve_streams([plain("1"), plain("2")], handler_for, routes={"chunk": answer_after_first})
        self.assertEqual(produced, [b"a", b"b"], "the SDK saw Kiln's answer and stopped writing")
        self.assertEqual(len(log), 1, log)
        self.assertRegex(log[0], r"^invocation 1: Kiln did not take the outcome: runtime API answered 410: .*caller_gone")
        self.assertEqual(fake.posts[1].body, b"next")

    def test_a_failed_write_still_reads_kilns_answer_from_the_connection(self):
        def cut_after_first(request, _fake):
            return refusal(410, "caller_gone") if len(request.chunks) == 1 else None

        def handler_for(fake):
            def body():
                yield b"a"
                fake.wait_until(lambda: was_cut(fake, "1"))
                yield b"b"
            return lambda request: kiln.stream(body()) if request.invocation_id == "1" else kiln.text("next")

        # Without the look for an early answer, the write itself fails (EPIPE) first.
        with mock.patch.object(Connection, "has_input", return_value=False):
            fake, log = serve_streams([plain("1"), plain("2")], handler_for, routes={"chunk": cut_after_first})
        self.assertEqual(len(log), 1, log)
        self.assertRegex(log[0], r"^invocation 1: Kiln did not take the outcome: runtime API answered 410: .*caller_gone")
        self.assertEqual(fake.posts[1].body, b"next")

    def test_kiln_closing_the_stream_without_an_answer_is_logged_and_serving_goes_on(self):
        def drop_after_first(request, _fake):
            return {"drop": True} if request.route[0] == "1" and len(request.chunks) == 1 else None

        def handler_for(fake):
            def body():
                yield b"a"
                fake.wait_until(lambda: was_cut(fake, "1"))
                yield b"b"
            return lambda request: kiln.stream(body()) if request.invocation_id == "1" else kiln.text("next")

        fake, log = serve_streams([plain("1"), plain("2")], handler_for, routes={"chunk": drop_after_first})
        self.assertEqual(len(log), 1, log)
        self.assertRegex(log[0], r"^invocation 1: Kiln stopped taking the streamed body \(.*\); its answer could not be read")
        self.assertEqual(fake.posts[1].body, b"next")

    def test_stream_takes_iterables_of_chunks_only(self):
        for bad in ("text", b"bytes", {"a": 1}, 5, None):
            with self.subTest(bad=bad), self.assertRaises(TypeError):
                kiln.stream(bad)
        self.assertTrue(kiln.stream([b"a"]).streamed)
        self.assertTrue(kiln.Response(body=(n for n in "ab")).streamed)
        self.assertFalse(kiln.text("whole").streamed)
        self.assertEqual(kiln.stream([], headers={"Content-Type": "text/csv"}).headers, [("Content-Type", "text/csv")])


if __name__ == "__main__":
    unittest.main()
