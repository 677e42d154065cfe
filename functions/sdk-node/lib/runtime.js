// The function's side of Kiln's runtime API over HTTP/1.1 on the runtime socket: fetch the
// next invocation, post its outcome, and the durable calls (checkpoint, sleep, wait).
//
// One keep-alive connection carries every call. When a request on the kept connection
// fails before any byte of the answer arrived (Kiln closed it while idle), it is sent once
// more on a fresh connection; a failure on a fresh connection is returned as is. A streamed
// response goes over a connection of its own (`streamed.js`).
'use strict';

const http = require('node:http');
const { setTimeout: delay } = require('node:timers/promises');

const { ApiError, Failure, Interrupt, errorSummary } = require('./errors');
const { Invocation } = require('./invocation');
const { encodeResponse } = require('./response');
const { sendStreamed } = require('./streamed');

/** Where Kiln mounts the runtime socket when `KILN_RUNTIME_SOCKET` is not set. */
const DEFAULT_SOCKET = '/run/kiln/runtime.sock';

/**
 * Largest header section accepted in an answer. Kiln forwards the caller's headers (its
 * front door takes 64 KiB of them) in the answer to `next`; Node's default is 16 KiB.
 */
const MAX_HEADER_SIZE = 1024 * 1024;

/**
 * Pauses before each retry of a durable call Kiln answered `503 store_unavailable`; when
 * they are used up the call fails with error type `StoreUnavailable`.
 */
const STORE_RETRY_DELAYS_MS = [100, 250, 500];

/** Errors that mean the peer went away before answering. */
const DISCONNECTS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENOTCONN']);

const EMPTY = Buffer.alloc(0);

/** A connection to Kiln's runtime API, kept alive between calls. */
class Runtime {
  /**
   * @param {string} socketPath the runtime socket
   * @param {{storeRetryDelaysMs?: number[]}} [options] pauses between retries of a durable
   *   call answered `503` (default 100, 250 and 500 ms)
   */
  constructor(socketPath, options = {}) {
    /** The socket this runtime talks to. */
    this.socketPath = socketPath;
    /** One connection, reused for every call, without a timeout (`next` is a long poll). */
    this._agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    /** Pauses before retrying a durable call answered `503`. */
    this._storeRetryDelaysMs = options.storeRetryDelaysMs || STORE_RETRY_DELAYS_MS;
  }

  /**
   * A runtime for the socket named by `KILN_RUNTIME_SOCKET`, or `DEFAULT_SOCKET`.
   * @param {NodeJS.ProcessEnv} [env]
   */
  static fromEnv(env = process.env) {
    return new Runtime(env.KILN_RUNTIME_SOCKET || DEFAULT_SOCKET);
  }

  /**
   * Waits, without a time limit, for the next invocation. Rejects with an `ApiError` for
   * an answer other than `200` (`503` means the container is retiring).
   * @returns {Promise<Invocation>}
   */
  async next() {
    const answer = await this._send('GET', '/v1/invocation/next', [], EMPTY);
    if (answer.status !== 200) {
      throw new ApiError(answer.status, answer.body);
    }
    return Invocation.fromNextResponse(answer);
  }

  /**
   * Completes invocation `id` with `response`. A response Kiln cannot take (status outside
   * 200–599, unsendable header, body that is not a string, bytes or an (async) iterator)
   * rejects with an `InvalidResponseError` before anything is sent, and the invocation
   * stays open.
   *
   * A streamed response is produced and sent chunk by chunk before this resolves. When its
   * body fails, `options.log` (default: stderr) gets the stack and Kiln the error type; when
   * Kiln stops taking it (the caller left: `410 caller_gone`; the stream was cut: `408
   * stream_cut`) this rejects with an `ApiError` carrying Kiln's answer, or logs a line when
   * the answer cannot be read. Either way the next invocation can be fetched.
   * @param {string} id the invocation id
   * @param {import('./response').Response} response
   * @param {{log?: (line: string) => void}} [options]
   */
  async respond(id, response, options = {}) {
    const { status, headers, body, chunks } = encodeResponse(response);
    const target = `/v1/invocation/${encodeSegment(id)}/response`;
    const fields = [['Kiln-Status', String(status)], ...headers];
    if (chunks === undefined) {
      await this._post(target, fields, body);
      return;
    }
    const log = options.log || stderrLog;
    let answer;
    try {
      answer = await sendStreamed(this.socketPath, target, requestHeaders(fields, null), chunks, (line) =>
        log(`invocation ${id}: ${line}`),
      );
    } catch (error) {
      throw withContext(error, 'POST', target, this.socketPath);
    }
    if (answer !== null && (answer.status < 200 || answer.status > 299)) {
      throw new ApiError(answer.status, answer.body);
    }
  }

  /**
   * Reports that invocation `id` failed: the caller gets `502 function_error` with
   * `errorType`; `message` goes to Kiln's log only.
   * @param {string} id the invocation id
   * @param {string} errorType
   * @param {string} message
   */
  async fail(id, errorType, message) {
    const body = Buffer.from(JSON.stringify({ errorType: String(errorType), errorMessage: String(message) }));
    await this._post(`/v1/invocation/${encodeSegment(id)}/error`, [['Content-Type', 'application/json']], body);
  }

  /**
   * `POST /v1/invocation/{id}/checkpoint`: stores `value` under `key` unless the key is
   * stored already, and resolves to the stored value (the first one wins).
   * @param {string} id the invocation id (not the instance id)
   * @param {string} key
   * @param {unknown} value any JSON value
   */
  async checkpoint(id, key, value) {
    const reply = await this._durableCall(id, 'checkpoint', { key, value });
    if (reply.suspended) {
      throw new Failure('RuntimeApiError', 'checkpoint: Kiln answered 202 to a checkpoint');
    }
    return reply.value;
  }

  /**
   * `POST /v1/invocation/{id}/sleep`: Kiln stores the wake time under `key` the first time
   * and uses the stored time on every later call with that key.
   * @param {string} id the invocation id
   * @param {string} key
   * @param {{durationMs: number} | {wakeAtMs: number}} wake
   * @returns {Promise<{suspended: true, wakeAtMs: number} | {suspended: false, value: unknown}>}
   */
  async sleep(id, key, wake) {
    const body = 'wakeAtMs' in wake ? { key, wake_at_ms: wake.wakeAtMs } : { key, duration_ms: wake.durationMs };
    return this._durableCall(id, 'sleep', body);
  }

  /**
   * `POST /v1/invocation/{id}/wait`: consumes the oldest unconsumed `event` signal, or
   * reports that the wait's deadline (fixed by the first call with `key`) has passed.
   * @param {string} id the invocation id
   * @param {string} key
   * @param {string} event
   * @param {number} timeoutMs
   * @returns {Promise<{suspended: true, wakeAtMs: number} | {suspended: false, value: unknown}>}
   */
  async wait(id, key, event, timeoutMs) {
    return this._durableCall(id, 'wait', { key, event, timeout_ms: timeoutMs });
  }

  /** Closes the kept connection. */
  close() {
    this._agent.destroy();
  }

  /**
   * A durable call. Kiln's refusals become: `409 instance_fenced` and `404
   * unknown_invocation` an `Interrupt` `fenced`, `413` an `Interrupt` `stopped`, `503`
   * retries with a back-off, anything else a `Failure` `RuntimeApiError`.
   */
  async _durableCall(id, verb, body) {
    const target = `/v1/invocation/${encodeSegment(id)}/${verb}`;
    const payload = Buffer.from(JSON.stringify(body));
    for (let retry = 0; ; retry++) {
      let answer;
      try {
        answer = await this._send('POST', target, [['Content-Type', 'application/json']], payload);
      } catch (error) {
        throw new Failure('IoError', `${verb}: ${error.message}`);
      }
      const status = answer.status;
      if (status === 200 || status === 202) {
        return parseReply(verb, answer);
      }
      const refusal = new ApiError(status, answer.body);
      // A dispatch that already ended (timed out) is as stale as a fenced one.
      if ((status === 404 || status === 409) && ['instance_fenced', 'unknown_invocation'].includes(refusal.code)) {
        throw new Interrupt('fenced', `this dispatch is stale (${refusal.code})`);
      }
      if (status === 413) {
        throw new Interrupt('stopped', `Kiln stopped the instance: ${errorSummary(status, answer.body)}`);
      }
      if (status === 503 && retry < this._storeRetryDelaysMs.length) {
        await delay(this._storeRetryDelaysMs[retry]);
        continue;
      }
      throw new Failure(status === 503 ? 'StoreUnavailable' : 'RuntimeApiError', `${verb}: ${refusal.message}`);
    }
  }

  /** Posts and expects a 2xx answer; rejects with an `ApiError` otherwise. */
  async _post(target, headers, body) {
    const answer = await this._send('POST', target, headers, body);
    if (answer.status < 200 || answer.status > 299) {
      throw new ApiError(answer.status, answer.body);
    }
  }

  /** Sends one request and reads its answer, retrying once on a stale kept connection. */
  async _send(method, target, headers, body) {
    try {
      return await this._exchange(method, target, headers, body);
    } catch (error) {
      if (!error.stale) {
        throw withContext(error, method, target, this.socketPath);
      }
    }
    try {
      return await this._exchange(method, target, headers, body);
    } catch (error) {
      throw withContext(error, method, target, this.socketPath);
    }
  }

  /** @returns {Promise<{status: number, headers: Array<[string, string]>, body: Buffer}>} */
  _exchange(method, target, headers, body) {
    return new Promise((resolve, reject) => {
      const request = http.request({
        agent: this._agent,
        socketPath: this.socketPath,
        method,
        path: target,
        headers: requestHeaders(headers, method === 'GET' && body.length === 0 ? null : body.length),
        maxHeaderSize: MAX_HEADER_SIZE,
      });
      let answered = false;
      request.on('response', (response) => {
        answered = true;
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode, headers: pairs(response.rawHeaders), body: Buffer.concat(chunks) });
        });
        response.on('aborted', () => reject(new Error('the connection closed inside the answer')));
        response.on('error', reject);
        response.on('close', () => {
          if (!response.complete) {
            reject(new Error('the connection closed inside the answer'));
          }
        });
      });
      request.on('error', (error) => {
        // Nothing came back on a reused connection: Kiln had closed it while it was idle.
        error.stale = !answered && request.reusedSocket && DISCONNECTS.has(error.code);
        reject(error);
      });
      request.end(body.length > 0 ? body : undefined);
    });
  }
}

/** The SDK's default log: a `kiln-sdk:` line on stderr (Kiln attributes it to the invocation). */
function stderrLog(line) {
  process.stderr.write(`kiln-sdk: ${line}\n`);
}

/**
 * Percent-encodes everything but RFC 3986 unreserved characters, for use as one path segment.
 * @param {string} segment
 */
function encodeSegment(segment) {
  return encodeURIComponent(String(segment)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Reads `200 {"value": ...}` or `202 {"suspended": true, "wake_at_ms": ...}`. */
function parseReply(verb, answer) {
  let body;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch (error) {
    throw new Failure('RuntimeApiError', `${verb}: Kiln answered a body that is not JSON (${error.message})`);
  }
  if (answer.status === 202) {
    const wakeAtMs = body && Number.isFinite(body.wake_at_ms) ? body.wake_at_ms : 0;
    return { suspended: true, wakeAtMs };
  }
  if (body === null || typeof body !== 'object' || !('value' in body)) {
    throw new Failure('RuntimeApiError', `${verb}: Kiln answered 200 without a "value"`);
  }
  return { suspended: false, value: body.value };
}

/**
 * The request's header object: `Host: kiln`, then `pairs` in order of first appearance
 * (repeated names grouped, so each is sent repeated), then the framing.
 */
function requestHeaders(headerList, contentLength) {
  const headers = { Host: 'kiln' };
  const spelled = new Map();
  for (const [name, value] of headerList) {
    const lower = name.toLowerCase();
    const existing = spelled.get(lower);
    if (existing === undefined) {
      spelled.set(lower, name);
      headers[name] = [value];
    } else {
      headers[existing].push(value);
    }
  }
  if (contentLength !== null) {
    headers['Content-Length'] = String(contentLength);
  }
  return headers;
}

function pairs(raw) {
  const result = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    result.push([raw[i], raw[i + 1]]);
  }
  return result;
}

function withContext(error, method, target, socketPath) {
  error.message = `${method} ${target} on ${socketPath}: ${error.message}`;
  return error;
}

module.exports = { DEFAULT_SOCKET, Runtime, encodeSegment, stderrLog };
