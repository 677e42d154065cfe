// A scripted fake of Kiln's runtime API (docs/function-contract.md) on a Unix socket in a
// temporary directory, for the SDK's tests. Not a test file itself.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

/** A recorded request to the fake: which connection carried it, and what it said. */
class Recorded {
  constructor(connection, method, target, rawHeaders, body) {
    /** Which accepted connection (1, 2, ...) carried the request. */
    this.connection = connection;
    this.method = method;
    this.target = target;
    /** Header fields as `[name, value]` pairs, as sent. */
    this.headers = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      this.headers.push([rawHeaders[i], rawHeaders[i + 1]]);
    }
    this.body = body;
    /** A chunked body: its pieces as they arrived, one per chunk sent apart (null for a Content-Length body). */
    this.chunks = null;
    /** The trailer fields of a chunked body, as `[name, value]` pairs. */
    this.trailers = [];
    /** Whether a chunked body ended with its last chunk. */
    this.complete = false;
    /** Whether the fake answered in the middle of the body (and closed the connection). */
    this.cut = false;
  }

  /** The `{id}` and verb of `/v1/invocation/{id}/{verb}`, or the verb `next`. */
  get route() {
    const match = /^\/v1\/invocation\/([^/]+)\/([a-z]+)$/.exec(this.target);
    if (this.target === '/v1/invocation/next') {
      return { id: null, verb: 'next' };
    }
    return match ? { id: decodeURIComponent(match[1]), verb: match[2] } : { id: null, verb: null };
  }

  header(name) {
    const found = this.headers.find(([field]) => field.toLowerCase() === name.toLowerCase());
    return found ? found[1] : null;
  }

  headerValues(name) {
    return this.headers.filter(([field]) => field.toLowerCase() === name.toLowerCase()).map(([, value]) => value);
  }

  trailer(name) {
    const found = this.trailers.find(([field]) => field.toLowerCase() === name.toLowerCase());
    return found ? found[1] : null;
  }

  json() {
    return JSON.parse(this.body.toString('utf8'));
  }
}

/**
 * A plain invocation as `next` hands it out.
 * @param {object} spec id, method, path, query, deadlineMs, headers ([name, value] pairs), body
 */
function plain(spec) {
  return { kind: 'plain', ...spec };
}

/**
 * A durable dispatch: `Kiln-Method: POST`, `Kiln-Path: /`, the instance headers and the
 * `{"input", "checkpoints"}` body.
 */
function durable({ id, instanceId = 'inst-1', attempt = 1, input = null, checkpoints = {}, body }) {
  return {
    kind: 'durable',
    id,
    method: 'POST',
    path: '/',
    instanceId,
    attempt,
    body: body === undefined ? JSON.stringify({ input, checkpoints }) : body,
  };
}

/**
 * The fake runtime API. `next` hands out the queued invocations in order, then answers
 * `503 container_retiring` (so the SDK's `run*` loops end). Every other route answers with
 * `routes[verb](request, fake)` when a test gives one, else the default: `202` to
 * response and error, first-write-wins storage for checkpoint, `202 suspended` for sleep
 * and wait. A route may answer `{status, json}`, `{status, body}` or `{drop: true}` (the
 * connection is closed without an answer).
 *
 * A chunked request body (Node's parser checks its framing) is in `requests` from its head
 * on; each piece is appended to its `chunks` as it arrives, and `routes.chunk(request, fake)`
 * (when given) runs after each. It returns nothing to read on, or a reply, answered at once
 * with `connection: close`, after which the connection is closed (`request.cut`), as Kiln
 * does when the caller left; with `keepOpen: true` (and no `connection: close`) the fake
 * reads on (and drops) what comes until the SDK closes.
 */
class FakeKiln {
  static async start({ invocations = [], routes = {} } = {}) {
    const fake = new FakeKiln(invocations, routes);
    await new Promise((resolve, reject) => {
      fake._server.once('error', reject);
      fake._server.listen(fake.socketPath, resolve);
    });
    return fake;
  }

  constructor(invocations, routes) {
    this._dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-sdk-node-'));
    /** The socket the SDK under test talks to. */
    this.socketPath = path.join(this._dir, 'runtime.sock');
    /** Invocations `next` still has to hand out. */
    this.queue = [...invocations];
    /** Every request, in the order received. */
    this.requests = [];
    /** Checkpoints stored by the default checkpoint route. */
    this.store = new Map();
    this._routes = routes;
    this._connections = 0;
    this._server = http.createServer((request, response) => this._handle(request, response));
    this._server.on('connection', (socket) => {
      socket.kilnConnection = ++this._connections;
    });
  }

  /** How many connections the SDK opened. */
  get connections() {
    return this._connections;
  }

  /** The recorded requests other than `next`. */
  get posts() {
    return this.requests.filter((request) => request.route.verb !== 'next');
  }

  /** Waits until `predicate()` holds; rejects after `timeoutMs`. */
  async waitUntil(predicate, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(`the fake waited ${timeoutMs} ms in vain`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  async close() {
    this._server.closeAllConnections();
    await new Promise((resolve) => this._server.close(resolve));
    fs.rmSync(this._dir, { recursive: true, force: true });
  }

  _handle(request, response) {
    const chunks = [];
    const recorded = new Recorded(request.socket.kilnConnection, request.method, request.url, request.rawHeaders, null);
    const chunked = /chunked/i.test(request.headers['transfer-encoding'] || '');
    let answered = false;
    if (chunked) {
      recorded.chunks = [];
      this.requests.push(recorded);
    }
    request.on('error', () => {});
    request.on('data', (chunk) => {
      chunks.push(chunk);
      if (!chunked || answered) {
        return;
      }
      recorded.chunks.push(chunk);
      const reply = this._routes.chunk ? this._routes.chunk(recorded, this) : undefined;
      if (reply) {
        answered = true;
        this._cut(request, response, recorded, reply);
      }
    });
    request.on('end', () => {
      recorded.body = Buffer.concat(chunks);
      if (answered) {
        return;
      }
      if (chunked) {
        recorded.complete = true;
        for (let i = 0; i + 1 < request.rawTrailers.length; i += 2) {
          recorded.trailers.push([request.rawTrailers[i], request.rawTrailers[i + 1]]);
        }
      } else {
        this.requests.push(recorded);
      }
      const { verb } = recorded.route;
      const route = this._routes[verb] || defaultRoutes[verb] || notFound;
      const reply = route.call(defaultRoutes, recorded, this);
      if (reply.drop) {
        request.socket.destroy();
        return;
      }
      send(response, reply);
    });
  }

  /** Answers `reply` in the middle of a chunked body, then closes the connection (or reads on). */
  _cut(request, response, recorded, reply) {
    const socket = request.socket;
    if (reply.drop) {
      socket.once('close', () => {
        recorded.cut = true;
      });
      socket.destroy();
      return;
    }
    // Node's server closes the connection itself after an answer with `connection: close`.
    const close = reply.keepOpen ? [] : ['connection', 'close'];
    send(response, { ...reply, headers: [...(reply.headers || []), ...close] }, () => {
      if (reply.keepOpen) {
        recorded.cut = true;
        return;
      }
      socket.once('close', () => {
        recorded.cut = true;
      });
      socket.destroy();
    });
  }
}

/** Writes `reply` as the answer; `then` runs once it is sent. */
function send(response, reply, then) {
  // Kiln's runtime API sends no Date header (hyper's auto_date_header is off).
  response.sendDate = false;
  const body = reply.json !== undefined ? Buffer.from(JSON.stringify(reply.json)) : Buffer.from(reply.body || '');
  response.writeHead(reply.status, [...(reply.headers || []), 'content-length', String(body.length)]);
  response.end(body, then);
}

const defaultRoutes = {
  next(request, fake) {
    const invocation = fake.queue.shift();
    if (invocation === undefined) {
      return { status: 503, json: { error: { code: 'container_retiring', message: 'this container takes no more work' } } };
    }
    const headers = ['kiln-invocation-id', invocation.id, 'kiln-method', invocation.method || 'GET'];
    headers.push('kiln-path', invocation.path || '/');
    if (invocation.query !== undefined && invocation.query !== null) {
      headers.push('kiln-query', invocation.query);
    }
    headers.push('kiln-deadline-ms', String(invocation.deadlineMs || Date.now() + 60_000));
    if (invocation.instanceId) {
      headers.push('kiln-instance-id', invocation.instanceId, 'kiln-instance-attempt', String(invocation.attempt));
    }
    for (const [name, value] of invocation.headers || []) {
      headers.push(name, value);
    }
    return { status: 200, headers, body: invocation.body || '' };
  },
  response() {
    return { status: 202 };
  },
  error() {
    return { status: 202 };
  },
  checkpoint(request, fake) {
    const { key, value } = request.json();
    if (!fake.store.has(key)) {
      fake.store.set(key, value);
    }
    return { status: 200, json: { value: fake.store.get(key) } };
  },
  sleep() {
    return { status: 202, json: { suspended: true, wake_at_ms: Date.now() + 60_000 } };
  },
  wait() {
    return { status: 202, json: { suspended: true, wake_at_ms: Date.now() + 60_000 } };
  },
};

function notFound() {
  return { status: 404, json: { error: { code: 'not_found', message: 'no such runtime API route' } } };
}

/** A collecting `log` option for the SDK's `run*` loops. */
function collectLog() {
  const lines = [];
  const log = (line) => lines.push(line);
  log.lines = lines;
  return log;
}

module.exports = { FakeKiln, collectLog, durable, plain };
