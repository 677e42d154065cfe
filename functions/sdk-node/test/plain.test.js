// Plain invocations through the SDK's loop against a fake runtime API: the request as the
// handler sees it, the response as Kiln receives it, failures, and the one kept connection.
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { Failure, Runtime, json, run, runDurable, text } = require('..');
const { FakeKiln, collectLog, plain } = require('./fake-kiln');

/** Runs `handler` against a fake serving `invocations` until it retires the container. */
async function serveAgainstFake(invocations, handler, routes = {}) {
  const kiln = await FakeKiln.start({ invocations, routes });
  const runtime = new Runtime(kiln.socketPath);
  const log = collectLog();
  try {
    await run(runtime, handler, { log });
  } finally {
    runtime.close();
    await kiln.close();
  }
  return { kiln, log };
}

test('an invocation round trip carries method, path, query, headers and body both ways', async () => {
  const seen = [];
  const body = Buffer.from([0x7b, 0x22, 0x6f, 0x22, 0x3a, 0x34, 0x32, 0x7d, 0xff]);
  const { kiln } = await serveAgainstFake(
    [
      plain({
        id: '7',
        method: 'POST',
        path: '/orders/a%20b',
        query: 'dry_run=1&name=J%C3%BCrgen+K&flag',
        deadlineMs: 1795305600000,
        headers: [
          ['content-type', 'application/json'],
          ['x-multi', 'a'],
          ['accept', '*/*'],
          ['X-Multi', 'b'],
        ],
        body,
      }),
    ],
    async (request) => {
      seen.push(request);
      return {
        status: 201,
        headers: [
          ['x-result', 'ok'],
          ['set-cookie', 'a=1'],
          ['Content-Length', '999'],
          ['kiln-status', '500'],
          ['set-cookie', 'b=2'],
        ],
        body: Buffer.from('done\n'),
      };
    },
  );
  assert.equal(seen.length, 1);
  const [request] = seen;
  assert.equal(request.invocationId, '7');
  assert.equal(request.method, 'POST');
  assert.equal(request.path, '/orders/a%20b');
  assert.equal(request.query, 'dry_run=1&name=J%C3%BCrgen+K&flag');
  assert.equal(request.queryParam('dry_run'), '1');
  assert.equal(request.queryParam('name'), 'Jürgen K');
  assert.equal(request.queryParam('flag'), '');
  assert.equal(request.queryParam('missing'), null);
  assert.equal(request.deadlineMs, 1795305600000);
  assert.equal(request.isDurable, false);
  assert.equal(request.headers.get('Content-Type'), 'application/json');
  assert.deepEqual(request.headers.getAll('X-MULTI'), ['a', 'b']);
  assert.deepEqual(
    [...request.headers].map(([name]) => name.toLowerCase()),
    ['content-type', 'x-multi', 'accept', 'x-multi'],
    'original headers in order, without kiln-* or framing fields',
  );
  assert.ok(Buffer.isBuffer(request.body));
  assert.deepEqual(request.body, body, 'the body byte for byte');
  assert.equal(request.text(), '{"o":42}\ufffd');

  const posts = kiln.posts;
  assert.equal(posts.length, 1);
  const [posted] = posts;
  assert.equal(posted.method, 'POST');
  assert.equal(posted.target, '/v1/invocation/7/response');
  assert.equal(posted.header('host'), 'kiln');
  assert.equal(posted.header('kiln-status'), '201');
  assert.deepEqual(posted.headerValues('kiln-status'), ['201'], 'the handler cannot set Kiln-Status');
  assert.equal(posted.header('x-result'), 'ok');
  assert.deepEqual(posted.headerValues('set-cookie'), ['a=1', 'b=2']);
  assert.equal(posted.header('content-length'), '5');
  assert.equal(posted.header('transfer-encoding'), null);
  assert.equal(posted.body.toString(), 'done\n');
});

test('json() and text() set body and content type; headers may be an object', async () => {
  const { kiln } = await serveAgainstFake(
    [plain({ id: '1' }), plain({ id: '2' }), plain({ id: '3' })],
    async (request) => {
      if (request.invocationId === '1') {
        return json({ ok: true, n: 1 }, { status: 202, headers: { 'x-a': ['1', 2] } });
      }
      if (request.invocationId === '2') {
        return text('héllo');
      }
      return json([1], { headers: { 'Content-Type': 'application/problem+json' } });
    },
  );
  const [first, second, third] = kiln.posts;
  assert.equal(first.header('kiln-status'), '202');
  assert.equal(first.header('content-type'), 'application/json');
  assert.deepEqual(first.headerValues('x-a'), ['1', '2']);
  assert.deepEqual(first.json(), { ok: true, n: 1 });
  assert.equal(second.header('kiln-status'), '200');
  assert.equal(second.header('content-type'), 'text/plain; charset=utf-8');
  assert.equal(second.body.toString('utf8'), 'héllo');
  assert.deepEqual(third.headerValues('content-type'), ['application/problem+json']);
});

test('a throwing handler is reported to /error with the error type, and serving goes on', async () => {
  class NotFound extends Error {
    constructor(message) {
      super(message);
      this.name = 'NotFound';
    }
  }
  const failures = [
    () => {
      throw new TypeError('x is not a function');
    },
    async () => {
      throw new NotFound('no order 9');
    },
    async () => {
      throw new Failure('InvalidInput', 'no user');
    },
    () => {
      // eslint-disable-next-line no-throw-literal
      throw 'a string';
    },
  ];
  const invocations = [...failures.map((_, i) => plain({ id: String(i + 1) })), plain({ id: 'ok' })];
  const { kiln, log } = await serveAgainstFake(invocations, async (request) =>
    request.invocationId === 'ok' ? text('fine') : failures[Number(request.invocationId) - 1](),
  );
  const posts = kiln.posts;
  assert.deepEqual(
    posts.map((post) => post.target),
    ['/v1/invocation/1/error', '/v1/invocation/2/error', '/v1/invocation/3/error', '/v1/invocation/4/error', '/v1/invocation/ok/response'],
  );
  assert.deepEqual(posts[0].json(), { errorType: 'TypeError', errorMessage: 'x is not a function' });
  assert.deepEqual(posts[1].json(), { errorType: 'NotFound', errorMessage: 'no order 9' });
  assert.deepEqual(posts[2].json(), { errorType: 'InvalidInput', errorMessage: 'no user' });
  assert.deepEqual(posts[3].json(), { errorType: 'HandlerError', errorMessage: 'a string' });
  assert.equal(posts[0].header('content-type'), 'application/json');
  assert.match(log.lines[0], /invocation 1: the handler failed: TypeError: x is not a function\n\s+at /);
});

test('a response Kiln cannot take is reported as InvalidResponse', async () => {
  const bad = {
    1: { status: 99 },
    2: { status: 200.5 },
    3: { headers: { 'bad name': 'x' } },
    4: { headers: { 'x-a': 'line\r\nbreak' } },
    5: { body: { an: 'object' } },
    6: undefined,
  };
  const { kiln } = await serveAgainstFake(
    Object.keys(bad).map((id) => plain({ id })),
    (request) => bad[request.invocationId],
  );
  const posts = kiln.posts;
  assert.equal(posts.length, 6);
  for (const post of posts) {
    assert.match(post.target, /\/error$/, `${post.target} is reported as an error`);
    assert.equal(post.json().errorType, 'InvalidResponse');
  }
  assert.match(posts[0].json().errorMessage, /99 is not an integer in 200-599/);
  assert.match(posts[4].json().errorMessage, /json\(\)/);
});

test('a refused outcome is logged and serving goes on', async () => {
  const { kiln, log } = await serveAgainstFake([plain({ id: '1' }), plain({ id: '2' })], () => text('hi'), {
    response(request) {
      return request.route.id === '1'
        ? { status: 404, json: { error: { code: 'unknown_invocation', message: 'gone' } } }
        : { status: 202 };
    },
  });
  assert.deepEqual(
    kiln.posts.map((post) => post.target),
    ['/v1/invocation/1/response', '/v1/invocation/2/response'],
  );
  assert.equal(log.lines.length, 1);
  assert.match(log.lines[0], /invocation 1: Kiln did not take the outcome: runtime API answered 404: .*unknown_invocation/);
});

test('one kept-alive connection carries every invocation', async () => {
  const { kiln } = await serveAgainstFake(
    [plain({ id: '1' }), plain({ id: '2' }), plain({ id: '3' })],
    () => text('hi'),
  );
  assert.equal(kiln.requests.length, 7, 'next, response three times, then the final next');
  assert.deepEqual(
    kiln.requests.map((request) => request.connection),
    [1, 1, 1, 1, 1, 1, 1],
  );
  assert.equal(kiln.connections, 1);
});

test('a kept connection Kiln closed is replaced and the request sent again', async () => {
  let dropped = false;
  const { kiln } = await serveAgainstFake([plain({ id: '1' }), plain({ id: '2' })], () => text('hi'), {
    response(request) {
      if (request.route.id === '2' && !dropped) {
        dropped = true;
        return { drop: true };
      }
      return { status: 202 };
    },
  });
  assert.ok(dropped);
  assert.deepEqual(
    kiln.posts.map((post) => [post.target, post.connection]),
    [
      ['/v1/invocation/1/response', 1],
      ['/v1/invocation/2/response', 1],
      ['/v1/invocation/2/response', 2],
    ],
  );
});

test('ids are encoded as one path segment', async () => {
  const { kiln } = await serveAgainstFake([plain({ id: 'a/b c?é' })], () => text('hi'));
  assert.equal(kiln.posts[0].target, '/v1/invocation/a%2Fb%20c%3F%C3%A9/response');
});

test('large request headers (Kiln forwards up to 64 KiB) are read', async () => {
  const big = 'x'.repeat(40 * 1024);
  const seen = [];
  await serveAgainstFake([plain({ id: '1', headers: [['x-big', big]] })], (request) => {
    seen.push(request.headers.get('x-big'));
    return text('hi');
  });
  assert.deepEqual(seen, [big]);
});

test('a durable dispatch to a plain-only function is NotDurable, and the reverse', async () => {
  const { kiln } = await serveAgainstFake(
    [{ kind: 'durable', id: 'd', method: 'POST', path: '/', instanceId: 'i', attempt: 1, body: '{"input":1}' }],
    () => text('hi'),
  );
  assert.equal(kiln.posts[0].target, '/v1/invocation/d/error');
  assert.equal(kiln.posts[0].json().errorType, 'NotDurable');

  const reverse = await FakeKiln.start({ invocations: [plain({ id: 'p' })] });
  const runtime = new Runtime(reverse.socketPath);
  try {
    await runDurable(runtime, async () => 'never', { log: collectLog() });
  } finally {
    runtime.close();
    await reverse.close();
  }
  assert.equal(reverse.posts[0].target, '/v1/invocation/p/error');
  assert.equal(reverse.posts[0].json().errorType, 'NotDurable');
});

test('run rejects when next is answered unexpectedly, and when the socket is missing', async () => {
  const kiln = await FakeKiln.start({ routes: { next: () => ({ status: 500, body: 'boom' }) } });
  const runtime = new Runtime(kiln.socketPath);
  try {
    await assert.rejects(run(runtime, () => text('hi'), { log: collectLog() }), /runtime API answered 500: boom/);
  } finally {
    runtime.close();
    await kiln.close();
  }
  const missing = new Runtime(`${kiln.socketPath}.missing`);
  await assert.rejects(run(missing, () => text('hi')), /ENOENT/);
  missing.close();
});
