"""Plain invocations through the SDK's loop against a fake runtime API: the request as the
handler sees it, the response as Kiln receives it, failures, and the one kept connection."""

import unittest

import kiln

from .fake_kiln import FakeKiln, plain
from .support import serve_against_fake


class NotFound(Exception):
    pass


class PlainInvocations(unittest.TestCase):
    def test_round_trip_carries_method_path_query_headers_and_body_both_ways(self):
        seen = []
        body = bytes([0x7B, 0x22, 0x6F, 0x22, 0x3A, 0x34, 0x32, 0x7D, 0xFF])

        def handler(request):
            seen.append(request)
            return kiln.Response(201, b"done\n", [("x-result", "ok"), ("set-cookie", "a=1"), ("Content-Length", "999"),
                                                  ("kiln-status", "500"), ("set-cookie", "b=2")])

        fake, _ = serve_against_fake([plain(
            "7", method="POST", path="/orders/a%20b", query="dry_run=1&name=J%C3%BCrgen+K&flag",
            deadline_ms=1795305600000, body=body,
            headers=[("content-type", "application/json"), ("x-multi", "a"), ("accept", "*/*"), ("X-Multi", "b")],
        )], handler)

        [request] = seen
        self.assertEqual(request.invocation_id, "7")
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.path, "/orders/a%20b")
        self.assertEqual(request.query, "dry_run=1&name=J%C3%BCrgen+K&flag")
        self.assertEqual(request.query_param("dry_run"), "1")
        self.assertEqual(request.query_param("name"), "Jürgen K")
        self.assertEqual(request.query_param("flag"), "")
        self.assertIsNone(request.query_param("missing"))
        self.assertEqual(request.deadline_ms, 1795305600000)
        self.assertEqual(request.deadline.year, 2026)
        self.assertFalse(request.is_durable)
        self.assertEqual(request.headers.get("Content-Type"), "application/json")
        self.assertEqual(request.headers.get_all("X-MULTI"), ["a", "b"])
        self.assertIn("accept", request.headers)
        self.assertEqual([name.lower() for name, _ in request.headers], ["content-type", "x-multi", "accept", "x-multi"],
                         "original headers in order, without kiln-* or framing fields")
        self.assertEqual(request.body, body, "the body byte for byte")
        self.assertEqual(request.text(), '{"o":42}\ufffd')

        [posted] = fake.posts
        self.assertEqual((posted.method, posted.target), ("POST", "/v1/invocation/7/response"))
        self.assertEqual(posted.header("host"), "kiln")
        self.assertEqual(posted.header_values("kiln-status"), ["201"], "the handler cannot set Kiln-Status")
        self.assertEqual(posted.header("x-result"), "ok")
        self.assertEqual(posted.header_values("set-cookie"), ["a=1", "b=2"])
        self.assertEqual(posted.header("content-length"), "5")
        self.assertIsNone(posted.header("transfer-encoding"))
        self.assertEqual(posted.body, b"done\n")

    def test_json_and_text_set_body_and_content_type(self):
        def handler(request):
            if request.invocation_id == "1":
                return kiln.json({"ok": True, "n": 1}, status=202, headers={"x-a": ["1", 2]})
            if request.invocation_id == "2":
                return kiln.text("héllo")
            return kiln.json([1], headers={"Content-Type": "application/problem+json"})

        fake, _ = serve_against_fake([plain("1"), plain("2"), plain("3")], handler)
        first, second, third = fake.posts
        self.assertEqual(first.header("kiln-status"), "202")
        self.assertEqual(first.header("content-type"), "application/json")
        self.assertEqual(first.header_values("x-a"), ["1", "2"])
        self.assertEqual(first.json(), {"ok": True, "n": 1})
        self.assertEqual(second.header("kiln-status"), "200")
        self.assertEqual(second.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(second.body.decode("utf-8"), "héllo")
        self.assertEqual(third.header_values("content-type"), ["application/problem+json"])

    def test_a_raising_handler_is_reported_with_the_exception_class_and_serving_goes_on(self):
        failures = {"1": TypeError("x is not callable"), "2": NotFound("no order 9"),
                    "3": kiln.Failure("InvalidInput", "no user")}

        def handler(request):
            if request.invocation_id == "ok":
                return kiln.text("fine")
            raise failures[request.invocation_id]

        fake, log = serve_against_fake([plain("1"), plain("2"), plain("3"), plain("ok")], handler)
        self.assertEqual([post.target for post in fake.posts], [
            "/v1/invocation/1/error", "/v1/invocation/2/error", "/v1/invocation/3/error", "/v1/invocation/ok/response"])
        self.assertEqual(fake.posts[0].json(), {"errorType": "TypeError", "errorMessage": "x is not callable"})
        self.assertEqual(fake.posts[1].json(), {"errorType": "NotFound", "errorMessage": "no order 9"})
        self.assertEqual(fake.posts[2].json(), {"errorType": "InvalidInput", "errorMessage": "no user"})
        self.assertEqual(fake.posts[0].header("content-type"), "application/json")
        self.assertRegex(log[0], r"invocation 1: the handler failed: Traceback .*\n(.*\n)*TypeError: x is not callable")

    def test_a_response_kiln_cannot_take_is_reported_as_invalid_response(self):
        bad = {"1": kiln.Response(99), "2": kiln.Response(True), "3": kiln.Response(headers={"bad name": "x"}),
               "4": kiln.Response(headers={"x-a": "line\r\nbreak"}), "5": kiln.Response(body={"an": "object"}),
               "6": None, "7": kiln.Response(headers={"x-a": "snow ☃"})}
        fake, _ = serve_against_fake([plain(key) for key in bad], lambda request: bad[request.invocation_id])
        self.assertEqual(len(fake.posts), len(bad))
        for post in fake.posts:
            self.assertTrue(post.target.endswith("/error"), f"{post.target} is reported as an error")
            self.assertEqual(post.json()["errorType"], "InvalidResponse")
        self.assertIn("99 is not an integer in 200-599", fake.posts[0].json()["errorMessage"])
        self.assertIn("kiln.json()", fake.posts[4].json()["errorMessage"])

    def test_a_refused_outcome_is_logged_and_serving_goes_on(self):
        def response(request, _fake):
            if request.route[0] == "1":
                return {"status": 404, "json": {"error": {"code": "unknown_invocation", "message": "gone"}}}
            return {"status": 202}

        fake, log = serve_against_fake([plain("1"), plain("2")], lambda _: kiln.text("hi"), routes={"response": response})
        self.assertEqual([post.target for post in fake.posts], ["/v1/invocation/1/response", "/v1/invocation/2/response"])
        self.assertEqual(len(log), 1)
        self.assertRegex(log[0], r"invocation 1: Kiln did not take the outcome: runtime API answered 404: .*unknown_invocation")

    def test_one_kept_alive_connection_carries_every_invocation(self):
        fake, _ = serve_against_fake([plain("1"), plain("2"), plain("3")], lambda _: kiln.text("hi"))
        self.assertEqual(len(fake.requests), 7, "next, response three times, then the final next")
        self.assertEqual({request.connection for request in fake.requests}, {1})
        self.assertEqual(fake.connections, 1)

    def test_a_kept_connection_kiln_closed_is_replaced_and_the_request_sent_again(self):
        dropped = []

        def response(request, _fake):
            if request.route[0] == "2" and not dropped:
                dropped.append(True)
                return {"drop": True}
            return {"status": 202}

        fake, _ = serve_against_fake([plain("1"), plain("2")], lambda _: kiln.text("hi"), routes={"response": response})
        self.assertEqual([(post.target, post.connection) for post in fake.posts], [
            ("/v1/invocation/1/response", 1), ("/v1/invocation/2/response", 1), ("/v1/invocation/2/response", 2)])

    def test_ids_are_encoded_as_one_path_segment(self):
        fake, _ = serve_against_fake([plain("a/b c?é")], lambda _: kiln.text("hi"))
        self.assertEqual(fake.posts[0].target, "/v1/invocation/a%2Fb%20c%3F%C3%A9/response")

    def test_large_request_headers_are_read(self):
        big = "x" * (70 * 1024)
        seen = []

        def handler(request):
            seen.append(request.headers.get("x-big"))
            return kiln.text("hi")

        serve_against_fake([plain("1", headers=[("x-big", big)] + [(f"x-{n}", str(n)) for n in range(150)])], handler)
        self.assertEqual(seen, [big])

    def test_a_durable_dispatch_to_a_plain_only_function_is_not_durable(self):
        fake, _ = serve_against_fake([{"id": "d", "method": "POST", "path": "/", "instance_id": "i", "attempt": 1,
                                       "body": '{"input":1}'}], lambda _: kiln.text("hi"))
        self.assertEqual(fake.posts[0].target, "/v1/invocation/d/error")
        self.assertEqual(fake.posts[0].json()["errorType"], "NotDurable")

    def test_run_raises_when_next_is_answered_unexpectedly_and_when_the_socket_is_missing(self):
        with FakeKiln(routes={"next": lambda _r, _f: {"status": 500, "body": "boom"}}) as fake:
            runtime = kiln.Runtime(fake.socket_path)
            with self.assertRaisesRegex(kiln.ApiError, "runtime API answered 500: boom"):
                kiln.run(runtime, lambda _: kiln.text("hi"), log=lambda _: None)
            runtime.close()
            missing = kiln.Runtime(fake.socket_path + ".missing")
            with self.assertRaisesRegex(OSError, r"GET /v1/invocation/next on .*missing"):
                kiln.run(missing, lambda _: kiln.text("hi"))


if __name__ == "__main__":
    unittest.main()
