// One invocation handed to the function by `GET /v1/invocation/next`: the original request
// (method, path, query, headers, body) plus Kiln's bookkeeping for it.
'use strict';

/**
 * Header fields of the `next` answer that describe the runtime message itself, not the
 * original request (Kiln's own `kiln-*` fields are left out as well).
 */
const MESSAGE_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);

/**
 * Request header fields in their original order, repeats kept, looked up without regard
 * to case. Values are strings as Node's HTTP parser gives them (each byte one character,
 * as in `http.IncomingMessage`), so they can be sent back unchanged.
 */
class Headers {
  /** @param {Array<[string, string]>} pairs name/value pairs in order */
  constructor(pairs = []) {
    this._pairs = pairs.map(([name, value]) => [String(name), String(value)]);
  }

  /**
   * The first value of `name` (case-insensitive), or `null`.
   * @param {string} name
   * @returns {string | null}
   */
  get(name) {
    const lower = String(name).toLowerCase();
    const found = this._pairs.find(([field]) => field.toLowerCase() === lower);
    return found ? found[1] : null;
  }

  /**
   * Every value of `name` (case-insensitive), in order; empty when absent.
   * @param {string} name
   * @returns {string[]}
   */
  getAll(name) {
    const lower = String(name).toLowerCase();
    return this._pairs.filter(([field]) => field.toLowerCase() === lower).map(([, value]) => value);
  }

  /**
   * Whether `name` (case-insensitive) is present.
   * @param {string} name
   */
  has(name) {
    return this.get(name) !== null;
  }

  /** How many fields there are (repeats counted). */
  get size() {
    return this._pairs.length;
  }

  /**
   * The `[name, value]` pairs, in order.
   * @returns {IterableIterator<[string, string]>}
   */
  entries() {
    return this._pairs.map(([name, value]) => [name, value])[Symbol.iterator]();
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  /** The pairs, for `JSON.stringify`. */
  toJSON() {
    return this._pairs.map(([name, value]) => [name, value]);
  }
}

/** The original request behind one invocation, as a handler receives it. */
class Invocation {
  /**
   * @param {object} fields
   * @param {string} fields.invocationId Kiln's opaque id (`Kiln-Invocation-Id`)
   * @param {string} [fields.method] the original method, e.g. `GET`
   * @param {string} [fields.path] the path after `/fn/{tenant}/{function}`, from `/`
   * @param {string | null} [fields.query] the raw query string without `?`
   * @param {Headers | Array<[string, string]>} [fields.headers] the original headers
   * @param {Buffer} [fields.body] the original body
   * @param {number} [fields.deadlineMs] when Kiln gives up (Unix ms), 0 if unknown
   * @param {string | null} [fields.instanceId] the durable instance, for a durable dispatch
   * @param {number} [fields.attempt] the dispatch's attempt, 0 for a plain invocation
   */
  constructor(fields) {
    /** Kiln's opaque id (`Kiln-Invocation-Id`), which the outcome is posted to. */
    this.invocationId = String(fields.invocationId);
    /** The original method (`Kiln-Method`), e.g. `GET`. */
    this.method = fields.method || 'GET';
    /** The path after `/fn/{tenant}/{function}` (`Kiln-Path`), from `/`, percent-encoding untouched. */
    this.path = fields.path || '/';
    /** The raw query string without `?` (`Kiln-Query`); `null` when the URL had none. */
    this.query = fields.query === undefined ? null : fields.query;
    /** The original request headers (see `Headers`); no `kiln-*` or framing fields. */
    this.headers = fields.headers instanceof Headers ? fields.headers : new Headers(fields.headers || []);
    /** The original request body, byte for byte. */
    this.body = fields.body || Buffer.alloc(0);
    /** Unix time in milliseconds at which Kiln gives up (`Kiln-Deadline-Ms`); 0 if unknown. */
    this.deadlineMs = fields.deadlineMs || 0;
    /** The durable instance this dispatch runs (`Kiln-Instance-Id`); `null` for a plain invocation. */
    this.instanceId = fields.instanceId || null;
    /** The dispatch's attempt (`Kiln-Instance-Attempt`, from 1); 0 for a plain invocation. */
    this.attempt = fields.attempt || 0;
  }

  /** Whether this is a dispatch of a durable instance rather than a plain invocation. */
  get isDurable() {
    return this.instanceId !== null;
  }

  /**
   * The first value of query parameter `name`, with `+` and `%XX` decoded (as UTF-8);
   * `''` for a bare `name` or `name=`, `null` when absent.
   * @param {string} name
   * @returns {string | null}
   */
  queryParam(name) {
    if (this.query === null) {
      return null;
    }
    for (const pair of this.query.split('&')) {
      if (pair === '') {
        continue;
      }
      const equals = pair.indexOf('=');
      const key = equals === -1 ? pair : pair.slice(0, equals);
      if (decodeComponent(key) === name) {
        return equals === -1 ? '' : decodeComponent(pair.slice(equals + 1));
      }
    }
    return null;
  }

  /** The body as UTF-8 text, invalid bytes replaced by U+FFFD. */
  text() {
    return this.body.toString('utf8');
  }

  /** The body parsed as JSON; throws `SyntaxError` when it is not JSON. */
  json() {
    return JSON.parse(this.text());
  }

  /** Milliseconds left until the deadline; `null` when Kiln sent none, 0 once it passed. */
  timeLeftMs() {
    if (!this.deadlineMs) {
      return null;
    }
    return Math.max(0, this.deadlineMs - Date.now());
  }

  /**
   * Builds the invocation from Kiln's answer to `GET /v1/invocation/next`.
   * @param {{headers: Array<[string, string]>, body: Buffer}} response
   * @returns {Invocation}
   */
  static fromNextResponse(response) {
    const all = new Headers(response.headers);
    const invocationId = all.get('kiln-invocation-id');
    if (!invocationId) {
      throw new Error('runtime API sent an invocation without a Kiln-Invocation-Id header');
    }
    const path = all.get('kiln-path');
    const deadline = Number.parseInt(all.get('kiln-deadline-ms') || '', 10);
    const instanceId = all.get('kiln-instance-id') || null;
    // At least 1 on a durable dispatch: the attempt counts this dispatch.
    const attempt = instanceId === null ? 0 : Math.max(1, Number.parseInt(all.get('kiln-instance-attempt') || '', 10) || 1);
    return new Invocation({
      invocationId,
      method: all.get('kiln-method') || 'GET',
      path: path && path.startsWith('/') ? path : '/',
      query: all.get('kiln-query'),
      headers: response.headers.filter(([name]) => isOriginal(name)),
      body: response.body,
      deadlineMs: Number.isFinite(deadline) && deadline > 0 ? deadline : 0,
      instanceId,
      attempt,
    });
  }
}

/** Whether a header of the `next` answer is one of the original request's. */
function isOriginal(name) {
  const lower = name.toLowerCase();
  return !lower.startsWith('kiln-') && !MESSAGE_HEADERS.has(lower);
}

/**
 * Decodes `+` as a space and `%XX` escapes, then the bytes as UTF-8 (invalid sequences
 * become U+FFFD); malformed escapes stay as they are.
 * @param {string} text
 */
function decodeComponent(text) {
  const bytes = Buffer.from(text, 'latin1');
  const decoded = Buffer.alloc(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === 0x2b) {
      decoded[length++] = 0x20;
    } else if (byte === 0x25 && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      decoded[length++] = Number.parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16);
      i += 2;
    } else {
      decoded[length++] = byte;
    }
  }
  return decoded.subarray(0, length).toString('utf8');
}

function isHex(byte) {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

module.exports = { Headers, Invocation, decodeComponent };
