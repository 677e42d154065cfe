// The response a function gives for one invocation: the `{status, headers, body}` shape a
// handler returns, its helpers (`json`, `text`, `stream`), and its checked encoding into what
// Kiln is sent. A body is whole (a string or bytes) or streamed (an async iterable or an
// iterator, e.g. a generator: each item reaches the caller as it is produced; `streamed.js`
// sends it).
'use strict';

/**
 * Response headers the SDK does not send: it frames the message itself, and Kiln would
 * drop them anyway (as it drops every `kiln-*` header).
 */
const SDK_OWNED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'host', 'te', 'trailer']);

/** An HTTP token (RFC 9110), the only thing a header name may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * A value with a control character (tab allowed) or a character outside Latin-1: it cannot
 * be sent verbatim in a header field.
 */
const UNSENDABLE_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f\u0100-\uffff]/;

/**
 * What a handler returns.
 * @typedef {object} Response
 * @property {number} [status] 200–599 (default 200)
 * @property {HeaderInit} [headers] sent in order, repeats kept
 * @property {string | Buffer | Uint8Array | ChunkSource | null} [body] a string is sent as
 *   UTF-8; an async iterable (async generator, readable stream) or an iterator (generator)
 *   is streamed (see `stream()`)
 */

/**
 * The items of a streamed body, each a string (sent as UTF-8) or bytes, each sent as one chunk.
 * @typedef {AsyncIterable<string | Uint8Array> | Iterator<string | Uint8Array>} ChunkSource
 */

/**
 * Response headers: an object (a value may be an array for a repeated header) or an
 * iterable of `[name, value]` pairs (an array of pairs, a `Headers`, a `Map`).
 * @typedef {Record<string, string | number | Array<string | number>> | Iterable<[string, string | number]>} HeaderInit
 */

/** A response Kiln cannot take (bad status, header or body): reported as `InvalidResponse`. */
class InvalidResponseError extends TypeError {
  constructor(message) {
    super(message);
    this.name = 'InvalidResponse';
  }
}

/**
 * A JSON response: `value` serialized with `JSON.stringify`, `content-type:
 * application/json` unless `init.headers` sets a content type.
 * @param {unknown} value
 * @param {{status?: number, headers?: HeaderInit}} [init]
 * @returns {{status: number, headers: Array<[string, string]>, body: string}}
 */
function json(value, init = {}) {
  const body = JSON.stringify(value === undefined ? null : value);
  return withContentType('application/json', body, init);
}

/**
 * A `text/plain; charset=utf-8` response (unless `init.headers` sets a content type).
 * @param {string} text
 * @param {{status?: number, headers?: HeaderInit}} [init]
 * @returns {{status: number, headers: Array<[string, string]>, body: string}}
 */
function text(text, init = {}) {
  return withContentType('text/plain; charset=utf-8', String(text), init);
}

/**
 * A streamed response: the status and headers reach the caller at once, then each item of
 * `chunks` (an async iterable such as an async generator or a readable stream, or any
 * iterable) as one chunk as soon as it is produced. `content-type` is `init.contentType`
 * (default `application/octet-stream`) unless `init.headers` sets one:
 *
 *     async function* events() {
 *       for (let n = 1; n <= 3; n++) {
 *         yield `data: ${n}\n\n`;
 *         await new Promise((resolve) => setTimeout(resolve, 1000));
 *       }
 *     }
 *     return kiln.stream(events(), { contentType: 'text/event-stream' });
 *
 * An error thrown while producing the items ends the body early: the caller's connection is
 * cut (the body is not whole), the error goes to the log and its `name` to Kiln
 * (`Kiln-Stream-Error`). When the caller goes away (or Kiln cuts the stream for idling or
 * running too long) the SDK stops asking for items, ends the iterator (a generator's
 * `finally` runs) and serves the next invocation.
 * @param {AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>} chunks
 * @param {{status?: number, headers?: HeaderInit, contentType?: string}} [init]
 * @returns {{status: number, headers: Array<[string, string]>, body: ChunkSource}}
 */
function stream(chunks, init = {}) {
  const whole = typeof chunks === 'string' || chunks instanceof Uint8Array || chunks instanceof ArrayBuffer;
  if (whole || !isIterable(chunks)) {
    throw new TypeError(`stream() takes an (async) iterable of string or bytes chunks, not ${describe(chunks)}`);
  }
  const source = typeof chunks[Symbol.asyncIterator] === 'function' ? chunks : chunks[Symbol.iterator]();
  return withContentType(init.contentType || 'application/octet-stream', source, init);
}

/**
 * One item of a streamed body as bytes (a string as UTF-8). Throws `InvalidResponseError`.
 * @param {unknown} item
 * @returns {Buffer}
 */
function chunkBytes(item) {
  if (typeof item === 'string' || item instanceof Uint8Array || item instanceof ArrayBuffer) {
    return bodyBytes(item);
  }
  throw new InvalidResponseError(`a streamed body produced ${describe(item)}; give string or bytes chunks`);
}

/**
 * Checks a handler's response and turns it into what is posted: status, header pairs
 * without the SDK-owned ones, and the body as bytes, or the `chunks` of a streamed body.
 * Throws `InvalidResponseError`.
 * @param {Response} response
 * @returns {{status: number, headers: Array<[string, string]>, body?: Buffer, chunks?: ChunkSource}}
 */
function encodeResponse(response) {
  if (response === null || typeof response !== 'object' || Buffer.isBuffer(response)) {
    throw new InvalidResponseError(
      `the handler returned ${describe(response)}, not a {status, headers, body} object (see json() and text())`,
    );
  }
  const status = response.status === undefined ? 200 : response.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new InvalidResponseError(`response status ${describe(status)} is not an integer in 200-599`);
  }
  const headers = [];
  for (const [name, value] of headerPairs(response.headers)) {
    if (!TOKEN.test(name)) {
      throw new InvalidResponseError(`bad header name ${JSON.stringify(name)}`);
    }
    if (UNSENDABLE_VALUE.test(value)) {
      throw new InvalidResponseError(`header ${name} has a control or non-Latin-1 character in its value`);
    }
    const lower = name.toLowerCase();
    if (!lower.startsWith('kiln-') && !SDK_OWNED.has(lower)) {
      headers.push([name, value]);
    }
  }
  if (isStreamed(response.body)) {
    return { status, headers, chunks: response.body };
  }
  return { status, headers, body: bodyBytes(response.body) };
}

/** Whether a body is streamed: an async iterable, or an iterator (not bytes or a string). */
function isStreamed(body) {
  if (body === null || typeof body !== 'object' || body instanceof Uint8Array) {
    return false;
  }
  return typeof body[Symbol.asyncIterator] === 'function' || (isIterable(body) && typeof body.next === 'function');
}

function isIterable(value) {
  return (
    value !== null &&
    value !== undefined &&
    (typeof value[Symbol.asyncIterator] === 'function' || typeof value[Symbol.iterator] === 'function')
  );
}

/**
 * `[name, value]` string pairs of a `HeaderInit`, in order.
 * @param {HeaderInit | undefined | null} headers
 * @returns {Array<[string, string]>}
 */
function headerPairs(headers) {
  if (headers === undefined || headers === null) {
    return [];
  }
  if (typeof headers !== 'object') {
    throw new InvalidResponseError(`response headers are ${describe(headers)}, not an object or [name, value] pairs`);
  }
  const pairs = [];
  if (typeof headers[Symbol.iterator] === 'function') {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new InvalidResponseError(`response header ${describe(pair)} is not a [name, value] pair`);
      }
      pairs.push([String(pair[0]), headerValue(pair[0], pair[1])]);
    }
    return pairs;
  }
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      pairs.push([name, headerValue(name, one)]);
    }
  }
  return pairs;
}

function headerValue(name, value) {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new InvalidResponseError(`header ${name} has the value ${describe(value)}, not a string or number`);
  }
  return String(value);
}

function bodyBytes(body) {
  if (body === undefined || body === null) {
    return Buffer.alloc(0);
  }
  if (typeof body === 'string') {
    return Buffer.from(body, 'utf8');
  }
  if (Buffer.isBuffer(body)) {
    return body;
  }
  if (body instanceof Uint8Array) {
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  if (body instanceof ArrayBuffer) {
    return Buffer.from(body);
  }
  throw new InvalidResponseError(
    `response body is ${describe(body)}; give a string, bytes or an (async) iterator (json() serializes values, stream() streams)`,
  );
}

function withContentType(contentType, body, init) {
  const headers = headerPairs(init.headers);
  if (!headers.some(([name]) => name.toLowerCase() === 'content-type')) {
    headers.unshift(['content-type', contentType]);
  }
  return { status: init.status === undefined ? 200 : init.status, headers, body };
}

function describe(value) {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (Buffer.isBuffer(value)) {
    return 'a Buffer';
  }
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    default:
      return `a ${typeof value}`;
  }
}

module.exports = { InvalidResponseError, TOKEN, chunkBytes, encodeResponse, headerPairs, json, stream, text };
