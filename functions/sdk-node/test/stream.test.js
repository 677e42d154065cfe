// Streamed responses through the SDK's loop against a fake runtime API: each item sent as one
// chunk as it is produced, the chunked head on a connection of its own, a failing body ended
// by a `Kiln-Stream-Error` trailer, Kiln stopping the stream (`410`, `408`, a closed
// connection) with serving going on, and the exact bytes on the wire.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const { Failure, Runtime, run, stream, text } = require('..');
const { encodeResponse } = require('../lib/response');
const { sendStreamed, streamErrorType } = require('../lib/streamed');
const { FakeKiln, collectLog, plain } = require('./fake-kiln');

/**
 * Runs the handler `handlerFor(fake)` against a fake serving `invocations` until it retires
 * the container; resolves to the fake (closed, its requests kept) and the log.
 */
async function serveStreams(invocations, handlerFor, routes = {}) {
  const kiln = await FakeKiln.start({ invocations, routes });
  const runtime = new Runtime(kiln.socketPath);
  const log = collectLog();
  try {
    await run(runtime, handlerFor(kiln), { log });
  } finally {
    runtime.close();
    await kiln.close();
  }
  return { kiln, log };
}

/** The recorded response post of invocation `id` (in progress or done), or undefined. */
function responsePost(kiln, id) {
  return kiln.posts.find((post) => post.route.id === id && post.route.verb === 'response');
}

/** The pieces Kiln has of `id`'s response so far, as strings ([] before its head arrived). */
function chunksOf(kiln, id) {
  const post = responsePost(kiln, id);
  return post && post.chunks ? post.chunks.map(String) : [];
}

function wasCut(kiln, id) {
  const post = responsePost(kiln, id);
  return Boolean(post && post.cut);
}

function refusal(status, code) {
  return { status, json: { error: { code, message: `the stream is over (${code})` } } };
}

test('each item reaches Kiln as one chunk before the next is produced', async () => {
  const arrivedFirst = [];
  const big = 'x'.repeat(2000);
  const { kiln, log } = await serveStreams([plain({ id: '1' })], (fake) => () => {
    async function* body() {
      yield Buffer.from('one');
      await fake.waitUntil(() => chunksOf(fake, '1').length === 1);
      arrivedFirst.push(...chunksOf(fake, '1'));
      yield 'twö';
      yield '';
      await fake.waitUntil(() => chunksOf(fake, '1').length === 2);
      arrivedFirst.push(chunksOf(fake, '1')[1]);
      yield new Uint8Array([0x74, 0x68, 0x72, 0x65, 0x65]);
      await fake.waitUntil(() => chunksOf(fake, '1').length === 3);
      yield big;
    }
    return stream(body(), { status: 201 });
  });
  const posted = responsePost(kiln, '1');
  assert.deepEqual(arrivedFirst, ['one', 'twö'], 'each chunk arrived before the next item was produced');
  assert.deepEqual(posted.chunks.slice(0, 3).map(String), ['one', 'twö', 'three'], 'one chunk per item, in order');
  assert.equal(Buffer.concat(posted.chunks.slice(3)).toString(), big);
  assert.equal(posted.complete, true, 'the body ended with the last chunk');
  assert.deepEqual(posted.trailers, []);
  assert.equal(posted.header('kiln-status'), '201');
  assert.deepEqual(log.lines, [], 'Kiln answered 202: nothing to log');
});

test('the head is chunked without Content-Length, on a fresh connection for each stream', async () => {
  const { kiln } = await serveStreams([plain({ id: '1' }), plain({ id: '2' }), plain({ id: '3' })], () => (request) => {
    if (request.invocationId === '1') {
      return stream(['a', 'b'], {
        headers: [
          ['x-a', '1'],
          ['Content-Length', '9'],
          ['kiln-status', '500'],
          ['Transfer-Encoding', 'gzip'],
        ],
      });
    }
    if (request.invocationId === '2') {
      return text('whole');
    }
    return { status: 202, headers: { 'content-type': 'text/event-stream' }, body: (function* () { yield 'c'; })() };
  });
  const [first, second, third] = kiln.posts;
  assert.deepEqual(first.headerValues('transfer-encoding'), ['chunked']);
  assert.equal(first.header('content-length'), null);
  assert.deepEqual(first.headerValues('kiln-status'), ['200']);
  assert.equal(first.header('content-type'), 'application/octet-stream');
  assert.equal(first.header('x-a'), '1');
  assert.equal(first.header('host'), 'kiln');
  assert.equal(first.body.toString(), 'ab');
  assert.equal(first.complete, true);
  assert.equal(second.header('content-length'), '5');
  assert.equal(second.chunks, null);
  assert.equal(second.body.toString(), 'whole');
  assert.equal(third.header('content-type'), 'text/event-stream');
  assert.equal(third.header('kiln-status'), '202');
  assert.deepEqual(third.chunks.map(String), ['c']);
  const nexts = kiln.requests.filter((request) => request.route.verb === 'next');
  assert.deepEqual([...new Set(nexts.map((request) => request.connection))], [1]);
  assert.deepEqual(
    [first.connection, second.connection, third.connection],
    [2, 1, 3],
    'each stream on a connection of its own; whole responses on the kept one',
  );
  assert.equal(kiln.connections, 3);
});

test('a failing body ends with the error trailer, and serving goes on', async () => {
  const closed = [];
  async function* body(id) {
    try {
      if (id === '1') {
        yield 'a';
        class NotFound extends Error {
          constructor(message) {
            super(message);
            this.name = 'NotFound';
          }
        }
        throw new NotFound('no more');
      }
      if (id === '2') {
        throw new Failure('QuotaExceeded', 'out of tokens');
      }
      if (id === '3') {
        yield 'b';
        const error = new Error('not a token');
        error.name = 'bad name';
        throw error;
      }
      if (id === '4') {
        // eslint-disable-next-line no-throw-literal
        throw 'a string';
      }
      yield 'c';
      yield 42;
      yield 'never sent';
    } finally {
      closed.push(id);
    }
  }
  const ids = ['1', '2', '3', '4', '5'];
  const { kiln, log } = await serveStreams([...ids.map((id) => plain({ id })), plain({ id: 'ok' })], () => (request) =>
    request.invocationId === 'ok' ? text('fine') : stream(body(request.invocationId)),
  );
  assert.deepEqual(
    kiln.posts.map((post) => post.target),
    [...ids, 'ok'].map((id) => `/v1/invocation/${id}/response`),
    'nothing goes to /error: the head was sent already',
  );
  const streams = kiln.posts.slice(0, 5);
  assert.deepEqual(
    streams.map((post) => post.trailer('kiln-stream-error')),
    ['NotFound', 'QuotaExceeded', 'StreamFailed', 'StreamFailed', 'InvalidResponse'],
  );
  assert.deepEqual(
    streams.map((post) => post.body.toString()),
    ['a', '', 'b', '', 'c'],
  );
  assert.ok(streams.every((post) => post.complete));
  assert.deepEqual(closed, ids);
  assert.equal(kiln.posts[5].body.toString(), 'fine');
  assert.equal(log.lines.length, 5, log.lines.join('\n'));
  assert.match(log.lines[0], /^invocation 1: the streamed body failed: NotFound: no more\n\s+at /);
  assert.match(log.lines[3], /^invocation 4: the streamed body failed: HandlerError: a string$/);
  assert.match(log.lines[4], /^invocation 5: the streamed body failed: InvalidResponse: a streamed body produced 42/);
});

for (const [status, code] of [
  [410, 'caller_gone'],
  [408, 'stream_cut'],
]) {
  test(`Kiln answering ${status} ${code} mid-stream ends the body, and the next invocation is served`, async () => {
    const produced = [];
    const closed = [];
    const { kiln, log } = await serveStreams(
      [plain({ id: '1' }), plain({ id: '2' })],
      (fake) => (request) => {
        const id = request.invocationId;
        return stream(
          (async function* () {
            try {
              for (const item of ['a', 'b', 'c']) {
                produced.push(`${id}${item}`);
                yield item;
                if (id === '1') {
                  await fake.waitUntil(() => wasCut(fake, '1'));
                }
              }
            } finally {
              closed.push(id);
            }
          })(),
        );
      },
      { chunk: (request) => (request.route.id === '1' && request.chunks.length === 1 ? refusal(status, code) : undefined) },
    );
    const [cut, served] = kiln.posts;
    assert.deepEqual(cut.chunks.map(String), ['a']);
    assert.equal(cut.complete, false);
    assert.equal(cut.cut, true);
    assert.deepEqual(
      produced.filter((item) => item.startsWith('1')),
      ['1a', '1b'],
      'no item is asked for once Kiln stopped taking the body',
    );
    assert.deepEqual(closed, ['1', '2'], 'the cut generator was ended');
    assert.equal(log.lines.length, 1, log.lines.join('\n'));
    assert.match(log.lines[0], new RegExp(`^invocation 1: Kiln did not take the outcome: runtime API answered ${status}: .*${code}`));
    assert.equal(served.body.toString(), 'abc');
    assert.equal(served.complete, true);
    assert.ok(![1, cut.connection].includes(served.connection), 'the next stream has a fresh connection');
    assert.equal(kiln.requests[kiln.requests.length - 1].route.verb, 'next', 'the loop went on until Kiln retired it');
  });
}

test('an answer before the body ended stops the body while the connection is still open', async () => {
  const produced = [];
  const { kiln, log } = await serveStreams(
    [plain({ id: '1' }), plain({ id: '2' })],
    (fake) => (request) =>
      request.invocationId === '1'
        ? stream(
            (async function* () {
              for (const item of ['a', 'b', 'c']) {
                produced.push(item);
                yield item;
                await fake.waitUntil(() => wasCut(fake, '1'));
              }
            })(),
          )
        : text('next'),
    { chunk: (request) => (request.chunks.length === 1 ? { ...refusal(410, 'caller_gone'), keepOpen: true } : undefined) },
  );
  assert.deepEqual(produced, ['a', 'b'], 'the SDK saw Kiln answer and stopped writing');
  assert.equal(log.lines.length, 1, log.lines.join('\n'));
  assert.match(log.lines[0], /^invocation 1: Kiln did not take the outcome: runtime API answered 410: .*caller_gone/);
  assert.equal(kiln.posts[1].body.toString(), 'next');
});

test('Kiln closing the stream without an answer is logged, and serving goes on', async () => {
  const { kiln, log } = await serveStreams(
    [plain({ id: '1' }), plain({ id: '2' })],
    (fake) => (request) =>
      request.invocationId === '1'
        ? stream(
            (async function* () {
              yield 'a';
              await fake.waitUntil(() => wasCut(fake, '1'));
              yield 'b';
            })(),
          )
        : text('next'),
    { chunk: (request) => (request.route.id === '1' && request.chunks.length === 1 ? { drop: true } : undefined) },
  );
  assert.equal(log.lines.length, 1, log.lines.join('\n'));
  assert.match(log.lines[0], /^invocation 1: Kiln stopped taking the streamed body \(.*\); its answer could not be read/);
  assert.equal(kiln.posts[1].body.toString(), 'next');
});

test('the bytes on the wire: chunked head, one chunk per item, the trailer, no empty chunk', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-sdk-node-raw-'));
  const socketPath = path.join(dir, 'runtime.sock');
  let raw = '';
  const server = net.createServer((socket) => {
    socket.on('data', (data) => {
      raw += data.toString('latin1');
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      if (/(^|\r\n)0\r\n(.*\r\n)*\r\n$/.test(body)) {
        socket.end('HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n');
      }
    });
  });
  await new Promise((resolve) => server.listen(socketPath, resolve));
  const lines = [];
  let answer;
  try {
    answer = await sendStreamed(
      socketPath,
      '/v1/invocation/7/response',
      { Host: 'kiln', 'Kiln-Status': ['200'], 'content-type': ['text/plain'] },
      (function* () {
        yield 'hello';
        yield '';
        yield Buffer.from('wörld');
        throw new Failure('Oops', 'the model fell over');
      })(),
      (line) => lines.push(line),
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const [head, body] = [raw.slice(0, raw.indexOf('\r\n\r\n') + 4), raw.slice(raw.indexOf('\r\n\r\n') + 4)];
  assert.match(head, /^POST \/v1\/invocation\/7\/response HTTP\/1\.1\r\n/);
  assert.match(head, /\r\nHost: kiln\r\n/);
  assert.match(head, /\r\nKiln-Status: 200\r\n/);
  assert.match(head, /\r\nTransfer-Encoding: chunked\r\n/);
  assert.doesNotMatch(head, /content-length/i);
  assert.equal(body, '5\r\nhello\r\n6\r\nw\u00c3\u00b6rld\r\n0\r\nKiln-Stream-Error: Oops\r\n\r\n');
  assert.equal(answer.status, 202);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^the streamed body failed: Oops: the model fell over/);
});

test('stream() takes (async) iterables of chunks only; iterator bodies are streamed', () => {
  for (const bad of ['text', Buffer.from('bytes'), { a: 1 }, 5, null, undefined]) {
    assert.throws(() => stream(bad), TypeError, `stream(${String(bad)})`);
  }
  assert.ok(encodeResponse(stream(['a'])).chunks, 'an array is streamed through stream()');
  assert.ok(encodeResponse({ body: (async function* () {})() }).chunks);
  assert.ok(encodeResponse({ body: (function* () {})() }).chunks);
  assert.equal(encodeResponse({ body: 'x' }).chunks, undefined);
  assert.throws(() => encodeResponse({ body: ['a'] }), /stream\(\) streams/, 'an array body is not a stream by itself');
  assert.deepEqual(stream([], { headers: { 'Content-Type': 'text/csv' } }).headers, [['Content-Type', 'text/csv']]);
  assert.deepEqual(stream([], { contentType: 'text/event-stream' }).headers, [['content-type', 'text/event-stream']]);
  assert.equal(streamErrorType(new TypeError('x')), 'TypeError');
  assert.equal(streamErrorType(new Failure('a b', 'x')), 'StreamFailed');
  assert.equal(streamErrorType(undefined), 'StreamFailed');
});
