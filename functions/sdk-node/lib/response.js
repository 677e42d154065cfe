// The response a function gives for one invocation: the `{status, headers, body}` shape a
// handler returns, its helpers, and its checked encoding into what Kiln is sent.
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
 * @property {string | Buffer | Uint8Array | null} [body] a string is sent as UTF-8
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
 * Checks a handler's response and turns it into what is posted: status, header pairs
 * without the SDK-owned ones, and the body as bytes. Throws `InvalidResponseError`.
 * @param {Response} response
 * @returns {{status: number, headers: Array<[string, string]>, body: Buffer}}
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
  return { status, headers, body: bodyBytes(response.body) };
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
    `response body is ${describe(body)}; give a string or bytes (json() serializes values)`,
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

module.exports = { InvalidResponseError, encodeResponse, headerPairs, json, text };
