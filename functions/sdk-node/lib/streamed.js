// Sending a streamed response (`stream()`, or a response whose body is an async iterable or
// an iterator) to `POST /v1/invocation/{id}/response`: the head with `Transfer-Encoding:
// chunked` on a connection of its own (a kept one may have gone stale, and a streamed body
// cannot be sent again), each item of the body as one chunk as soon as it is produced, then
// the last chunk, with a `Kiln-Stream-Error` trailer when producing the body failed. The
// connection is closed afterwards.
//
// Kiln answers only when the stream is over. When it stops taking the body early (`410
// caller_gone`, `408 stream_cut`), its answer is already on the connection: writing stops
// (Kiln answered, or a write failed), the body's iterator is ended, and the answer is read.
'use strict';

const http = require('node:http');
const { setImmediate: nextTurn } = require('node:timers/promises');

const { describeThrown } = require('./errors');
const { TOKEN, chunkBytes } = require('./response');

/** The trailer's error type when the thrown value's own `name` is not an HTTP token. */
const DEFAULT_STREAM_ERROR = 'StreamFailed';

/** A `POST` whose body follows in chunks, on a fresh connection that closes with it. */
class ChunkedRequest {
  /**
   * Connects and sends the head; rejects when the socket cannot be reached.
   * @param {string} socketPath
   * @param {string} target
   * @param {Record<string, string | string[]>} headers the request's headers, `Host` included
   * @returns {Promise<ChunkedRequest>}
   */
  static async open(socketPath, target, headers) {
    const request = new ChunkedRequest(socketPath, target, headers);
    await request._connected;
    return request;
  }

  constructor(socketPath, target, headers) {
    this._request = http.request({
      agent: false,
      socketPath,
      method: 'POST',
      path: target,
      headers: { ...headers, 'Transfer-Encoding': 'chunked' },
    });
    /** Why Kiln stopped taking the body (its answer came, a write failed), or null while it takes it. */
    this.broken = null;
    /** Whether the last chunk is on its way: an answer then is the expected one. */
    this._ending = false;
    let stop;
    /** Settles once Kiln answered or the connection failed: a pending write is given up then. */
    this._stopped = new Promise((resolve) => {
      stop = resolve;
    });
    this._connected = new Promise((resolve, reject) => {
      this._request.once('socket', (socket) => (socket.connecting ? socket.once('connect', resolve) : resolve()));
      this._request.once('error', reject);
    });
    this._answer = new Promise((resolve, reject) => {
      this._request.on('response', (response) => {
        if (!this._ending) {
          this._break(new Error('Kiln answered before the body ended'));
        }
        stop();
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode, body: Buffer.concat(chunks) }));
        response.on('error', reject);
        response.on('close', () => {
          if (!response.complete) {
            reject(new Error('the connection closed inside the answer'));
          }
        });
      });
      this._request.on('error', (error) => {
        this._break(error);
        stop();
        reject(error);
      });
    });
    this._connected.catch(() => {});
    this._answer.catch(() => {});
    this._request.flushHeaders();
  }

  /**
   * Sends `data` as one chunk, at once; empty data sends nothing (an empty chunk would end
   * the body). Resolves to false once Kiln stopped taking the body.
   * @param {Buffer} data
   */
  async sendChunk(data) {
    if (data.length > 0) {
      await this._write((done) => this._request.write(data, done));
    }
    return this.broken === null;
  }

  /**
   * Sends the last chunk, with `trailers` (already checked), unless Kiln stopped taking the body.
   * @param {Array<[string, string]>} trailers
   */
  async finish(trailers) {
    await this._write((done) => {
      this._ending = true;
      if (trailers.length > 0) {
        this._request.addTrailers(trailers);
      }
      this._request.end(done);
    });
  }

  /**
   * Kiln's answer; rejects when it cannot be read.
   * @returns {Promise<{status: number, body: Buffer}>}
   */
  answer() {
    return this._answer;
  }

  close() {
    this._request.destroy();
  }

  /** Runs `start(done)` unless Kiln stopped taking the body, and waits for `done` or the stop. */
  async _write(start) {
    // An answer already on the connection is read first: a write to a connection Kiln closed
    // fails and destroys the socket, with the unread answer in it.
    await nextTurn();
    await nextTurn();
    if (this.broken !== null) {
      return;
    }
    const written = new Promise((resolve) => {
      start((error) => {
        if (error) {
          this._break(error);
        }
        resolve();
      });
    });
    await Promise.race([written, this._stopped]);
  }

  _break(error) {
    if (this.broken === null) {
      this.broken = error;
    }
  }
}

/**
 * Posts the head, every item of `chunks`, then the end; resolves to Kiln's answer, or null
 * when it could not be read (`log(line)` says why).
 *
 * An error thrown by `chunks` (or an item that is neither a string nor bytes) goes to the
 * log and ends the body with a `Kiln-Stream-Error` trailer naming its type. Rejects only
 * when the runtime socket cannot be reached.
 * @param {string} socketPath
 * @param {string} target
 * @param {Record<string, string | string[]>} headers
 * @param {import('./response').ChunkSource} chunks
 * @param {(line: string) => void} log
 * @returns {Promise<{status: number, body: Buffer} | null>}
 */
async function sendStreamed(socketPath, target, headers, chunks, log) {
  const request = await ChunkedRequest.open(socketPath, target, headers);
  try {
    const failure = await sendBody(request, chunks);
    if (failure !== null) {
      log(`the streamed body failed: ${describeThrown(failure.thrown)}`);
    }
    if (request.broken === null) {
      await request.finish(failure === null ? [] : [['Kiln-Stream-Error', streamErrorType(failure.thrown)]]);
    }
    try {
      return await request.answer();
    } catch (error) {
      const cut = request.broken ? `Kiln stopped taking the streamed body (${request.broken.message}); ` : '';
      log(`${cut}its answer could not be read: ${error.message}`);
      return null;
    }
  } finally {
    request.close();
  }
}

/**
 * The `Kiln-Stream-Error` of a thrown value: its `name` (an error's class name, or a
 * `Failure`'s type) when that is an HTTP token, else `StreamFailed`.
 * @param {unknown} thrown
 */
function streamErrorType(thrown) {
  const name = thrown !== null && typeof thrown === 'object' && typeof thrown.name === 'string' ? thrown.name : '';
  return TOKEN.test(name) ? name : DEFAULT_STREAM_ERROR;
}

/**
 * Sends each item as a chunk until the items run out or Kiln stops taking them; leaving the
 * loop early ends the iterator (a generator's `finally` runs). Resolves to `{thrown}` when
 * producing or sending an item threw, else null.
 */
async function sendBody(request, chunks) {
  try {
    for await (const item of chunks) {
      if (!(await request.sendChunk(chunkBytes(item)))) {
        break;
      }
    }
    return null;
  } catch (thrown) {
    return { thrown };
  }
}

module.exports = { ChunkedRequest, sendStreamed, streamErrorType };
