// Durable dispatches through the SDK's loop against a fake runtime API: replay from stored
// checkpoints, suspension by sleep and wait, fencing, and failures.
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { Interrupt, Runtime, runAll, runDurable, text } = require('..');
const { FakeKiln, collectLog, durable, plain } = require('./fake-kiln');

/** Runs `workflow` against a fake serving `invocations` until it retires the container. */
async function serveAgainstFake(invocations, workflow, routes = {}, runtimeOptions = {}) {
  const kiln = await FakeKiln.start({ invocations, routes });
  const runtime = new Runtime(kiln.socketPath, runtimeOptions);
  const log = collectLog();
  try {
    await runDurable(runtime, workflow, { log });
  } finally {
    runtime.close();
    await kiln.close();
  }
  return { kiln, log };
}

test('a replay reuses stored checkpoints and stores only the new ones', async () => {
  const ran = [];
  const seen = [];
  const { kiln } = await serveAgainstFake(
    [durable({ id: '9', instanceId: 'inst-42', attempt: 3, input: { order: 42 }, checkpoints: { reserve: { reservation: 'r-42' } } })],
    async (instance) => {
      seen.push({ id: instance.id, attempt: instance.attempt, input: instance.input, invocationId: instance.invocationId });
      const reservation = await instance.checkpoint('reserve', () => {
        ran.push('reserve');
        return { reservation: 'r-new' };
      });
      const charge = await instance.checkpoint('charge', async () => {
        ran.push('charge');
        return { charge: `ch-${instance.input.order}`, at: new Date(0) };
      });
      const nothing = await instance.checkpoint('notify', () => {
        ran.push('notify');
      });
      return { reservation, charge, nothing };
    },
  );
  assert.deepEqual(seen, [{ id: 'inst-42', attempt: 3, input: { order: 42 }, invocationId: '9' }]);
  assert.deepEqual(ran, ['charge', 'notify'], 'the stored step did not run again');
  const posts = kiln.posts;
  assert.deepEqual(
    posts.map((post) => post.target),
    ['/v1/invocation/9/checkpoint', '/v1/invocation/9/checkpoint', '/v1/invocation/9/response'],
  );
  assert.deepEqual(posts[0].json(), { key: 'charge', value: { charge: 'ch-42', at: '1970-01-01T00:00:00.000Z' } });
  assert.deepEqual(posts[1].json(), { key: 'notify', value: null });
  assert.equal(posts[2].header('content-type'), 'application/json');
  assert.deepEqual(posts[2].json(), {
    reservation: { reservation: 'r-42' },
    charge: { charge: 'ch-42', at: '1970-01-01T00:00:00.000Z' },
    nothing: null,
  });
});

test('a checkpoint stored first by another dispatch wins', async () => {
  const results = [];
  await serveAgainstFake(
    [durable({ id: '1' })],
    async (instance) => {
      results.push(await instance.checkpoint('pick', () => 'mine'));
      results.push(await instance.checkpoint('pick', () => 'again'));
      return null;
    },
    { checkpoint: () => ({ status: 200, json: { value: 'theirs' } }) },
  );
  assert.deepEqual(results, ['theirs', 'theirs']);
});

test('a sleep answered 202 suspends: nothing is posted and the next invocation is served', async () => {
  let after = false;
  let caught = null;
  const wakeAt = Date.now() + 60_000;
  const { kiln, log } = await serveAgainstFake(
    [
      durable({ id: '1', checkpoints: {} }),
      durable({ id: '2', checkpoints: { nap: { wake_at_ms: Date.now() - 1 } } }),
    ],
    async (instance) => {
      try {
        await instance.sleep('nap', 30_000.2);
      } catch (error) {
        caught = caught || error;
        throw error;
      }
      after = true;
      return { woke: instance.invocationId };
    },
    { sleep: () => ({ status: 202, json: { suspended: true, wake_at_ms: wakeAt } }) },
  );
  assert.ok(caught instanceof Interrupt);
  assert.equal(caught.kind, 'suspended');
  const posts = kiln.posts;
  assert.deepEqual(
    posts.map((post) => post.target),
    ['/v1/invocation/1/sleep', '/v1/invocation/2/response'],
    'dispatch 1 posts only its sleep; dispatch 2 finds the past wake time and does not call',
  );
  assert.deepEqual(posts[0].json(), { key: 'nap', duration_ms: 30001 });
  assert.ok(after);
  assert.deepEqual(posts[1].json(), { woke: '2' });
  assert.deepEqual(log.lines, [], 'a suspension is not worth a log line');
});

test('a sleep answered 200 carries on; sleepUntil sends the wake time', async () => {
  const { kiln } = await serveAgainstFake(
    [durable({ id: '1' })],
    async (instance) => {
      await instance.sleep('short', 5);
      await instance.sleepUntil('deadline', new Date(1795305600000));
      await instance.sleepUntil('deadline-ms', 1795305600000.9);
      return 'done';
    },
    { sleep: (request) => ({ status: 200, json: { value: { wake_at_ms: 1 }, key: request.json().key } }) },
  );
  const posts = kiln.posts;
  assert.deepEqual(posts.map((post) => post.json()), [
    { key: 'short', duration_ms: 5 },
    { key: 'deadline', wake_at_ms: 1795305600000 },
    { key: 'deadline-ms', wake_at_ms: 1795305600000 },
    'done',
  ]);
});

test('a workflow that swallows the interrupt posts nothing, and later steps throw it again', async () => {
  let again = null;
  const { kiln } = await serveAgainstFake([durable({ id: '1' })], async (instance) => {
    try {
      await instance.sleep('nap', 1000);
    } catch {
      // swallowed on purpose
    }
    try {
      await instance.checkpoint('after', () => 'x');
    } catch (error) {
      again = error;
    }
    return 'should not be posted';
  });
  assert.ok(again instanceof Interrupt && again.kind === 'suspended');
  assert.deepEqual(
    kiln.posts.map((post) => post.target),
    ['/v1/invocation/1/sleep'],
  );
});

test('a fenced call (409) ends the dispatch without posting, and the loop goes on', async () => {
  let after = false;
  const kiln = await FakeKiln.start({
    invocations: [durable({ id: '1' }), durable({ id: '2' }), plain({ id: '3' })],
    routes: {
      checkpoint(request) {
        return request.route.id === '1'
          ? { status: 409, json: { error: { code: 'instance_fenced', message: 'stale dispatch' } } }
          : { status: 404, json: { error: { code: 'unknown_invocation', message: 'timed out' } } };
      },
    },
  });
  const runtime = new Runtime(kiln.socketPath);
  const log = collectLog();
  try {
    await runAll(
      runtime,
      () => text('plain'),
      async (instance) => {
        await instance.checkpoint('step', () => 1);
        after = true;
        return 'done';
      },
      { log },
    );
  } finally {
    runtime.close();
    await kiln.close();
  }
  assert.equal(after, false, 'nothing after the fenced step ran');
  assert.deepEqual(
    kiln.posts.map((post) => post.target),
    ['/v1/invocation/1/checkpoint', '/v1/invocation/2/checkpoint', '/v1/invocation/3/response'],
  );
  assert.equal(log.lines.length, 2);
  assert.match(log.lines[0], /dispatch 1 ended: this dispatch is stale \(instance_fenced\)/);
  assert.match(log.lines[1], /dispatch 2 ended: this dispatch is stale \(unknown_invocation\)/);
});

test('waitForEvent gives the payload, null on timeout, and numbers its keys per name', async () => {
  const outcomes = [];
  const answers = {
    'event:approved:1': { event: 'approved', payload: { by: 'ana' } },
    'event:approved:2': { timed_out: true },
    'event:shipped:1': { event: 'shipped' },
  };
  const { kiln } = await serveAgainstFake(
    [durable({ id: '1', checkpoints: { 'event:approved:1': { event: 'approved', payload: 'stored' } } })],
    async (instance) => {
      outcomes.push(await instance.waitForEvent('approved', 1000));
      outcomes.push(await instance.waitForEvent('approved', 2000));
      outcomes.push(await instance.waitForEvent('shipped', 3000.5));
      outcomes.push(instance.stored('event:approved:2'));
      return outcomes;
    },
    { wait: (request) => ({ status: 200, json: { value: answers[request.json().key] } }) },
  );
  assert.deepEqual(outcomes, ['stored', null, null, { timed_out: true }]);
  const posts = kiln.posts;
  assert.deepEqual(posts.map((post) => post.json()), [
    { key: 'event:approved:2', event: 'approved', timeout_ms: 2000 },
    { key: 'event:shipped:1', event: 'shipped', timeout_ms: 3001 },
    ['stored', null, null, { timed_out: true }],
  ]);
});

test('a wait with nothing yet (202) suspends the instance', async () => {
  let after = false;
  const { kiln } = await serveAgainstFake([durable({ id: '1' })], async (instance) => {
    const payload = await instance.waitForEvent('approved', 86_400_000);
    after = true;
    return payload;
  });
  assert.equal(after, false);
  assert.deepEqual(
    kiln.posts.map((post) => [post.target, post.json()]),
    [['/v1/invocation/1/wait', { key: 'event:approved:1', event: 'approved', timeout_ms: 86_400_000 }]],
  );
});

test('a throwing workflow fails the instance with the error type', async () => {
  const { kiln, log } = await serveAgainstFake(
    [durable({ id: '1' }), durable({ id: '2', body: 'not json' }), durable({ id: '3' })],
    async (instance) => {
      if (instance.invocationId === '3') {
        return { big: 10n };
      }
      await instance.checkpoint('work', () => {
        throw new RangeError('amount out of range');
      });
      return 'never';
    },
  );
  const posts = kiln.posts;
  assert.deepEqual(
    posts.map((post) => [post.target, post.json().errorType]),
    [
      ['/v1/invocation/1/error', 'RangeError'],
      ['/v1/invocation/2/error', 'InvalidDispatch'],
      ['/v1/invocation/3/error', 'InvalidOutput'],
    ],
  );
  assert.equal(posts[0].json().errorMessage, 'amount out of range');
  assert.match(log.lines[0], /instance inst-1: dispatch 1 failed: RangeError: amount out of range/);
});

test('store_unavailable (503) is retried, then fails as StoreUnavailable; 413 stops the dispatch', async () => {
  let calls = 0;
  const results = [];
  const { kiln } = await serveAgainstFake(
    [durable({ id: '1' }), durable({ id: '2' }), durable({ id: '3' })],
    async (instance) => {
      results.push(await instance.checkpoint('step', () => instance.invocationId));
      return results;
    },
    {
      checkpoint(request) {
        const { id } = request.route;
        calls++;
        if (id === '1' && calls < 3) {
          return { status: 503, json: { error: { code: 'store_unavailable', message: 'down' } } };
        }
        if (id === '1') {
          return { status: 200, json: { value: request.json().value } };
        }
        if (id === '2') {
          return { status: 503, json: { error: { code: 'store_unavailable', message: 'down' } } };
        }
        return { status: 413, json: { error: { code: 'value_too_large', message: 'too big' } } };
      },
    },
    { storeRetryDelaysMs: [1, 1, 1] },
  );
  const summary = kiln.posts.map((post) => post.target.replace('/v1/invocation/', ''));
  assert.deepEqual(summary, [
    '1/checkpoint',
    '1/checkpoint',
    '1/checkpoint',
    '1/response',
    '2/checkpoint',
    '2/checkpoint',
    '2/checkpoint',
    '2/checkpoint',
    '2/error',
    '3/checkpoint',
  ]);
  assert.deepEqual(results, ['1']);
  const failure = kiln.posts[8].json();
  assert.equal(failure.errorType, 'StoreUnavailable');
  assert.match(failure.errorMessage, /checkpoint: runtime API answered 503/);
});
