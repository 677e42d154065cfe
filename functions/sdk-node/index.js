// Kiln's function SDK for Node.js: the function side of `docs/function-contract.md`.
//
// A Kiln function pulls invocations from Kiln over HTTP/1.1 on a Unix socket. `serve` runs
// that loop around a handler:
//
//     const kiln = require('kiln-sdk');
//     kiln.serve(async (request) => kiln.text(`hello, ${request.queryParam('name') || 'world'}`));
//
// A handler answers with `kiln.text`, `kiln.json`, a `{status, headers, body}` object, or
// `kiln.stream` for a body the caller gets piece by piece as it is produced (server-sent
// events, progress, tokens of a long answer). Each item the (async) iterable yields (a string
// or bytes) is sent as one chunk at once; a `body` that is an async iterable or an iterator
// streams the same way:
//
//     kiln.serve(async (request) => kiln.stream((async function* () {
//       for (let n = 1; n <= 3; n++) yield `data: ${n}\n\n`;
//     })(), { contentType: 'text/event-stream' }));
//
// An error thrown by the generator cuts the caller's body short (logged, and its `name`
// reported to Kiln as `Kiln-Stream-Error`); when the caller goes away, the generator is ended
// and the next invocation served. A streamed response uses a connection of its own.
//
// Durable instances (`POST /v1/functions/{name}/instances`) may stop at any point and are
// then replayed from the start with their input and the results stored so far.
// `serveDurable` runs such a handler; each step of an `Instance` resolves to its stored
// result on replay instead of running again:
//
//     kiln.serveDurable(async (instance) => {
//       const ticket = await instance.checkpoint('open-ticket', () => openTicket(instance.id));
//       await instance.sleep('a-day', 24 * 3600 * 1000);
//       const answer = await instance.waitForEvent('answered', 3600 * 1000);
//       return { ticket, answered: answer !== null };
//     });
//
// `serveAll` serves plain invocations and durable instances from one program; `Runtime`
// gives the individual calls for programs that drive the loop themselves.
'use strict';

const { ApiError, Failure, Interrupt, describeThrown, errorMessageOf, errorTypeOf } = require('./lib/errors');
const { Instance } = require('./lib/instance');
const { Headers, Invocation } = require('./lib/invocation');
const { InvalidResponseError, json, stream, text } = require('./lib/response');
const { DEFAULT_SOCKET, Runtime, stderrLog } = require('./lib/runtime');

/**
 * A handler for plain invocations: gets the request, returns (or resolves to) the response.
 * @callback Handler
 * @param {Invocation} request
 * @returns {import('./lib/response').Response | Promise<import('./lib/response').Response>}
 */

/**
 * A handler for durable instances: gets the dispatch's instance, resolves to the
 * instance's output (any JSON value).
 * @callback Workflow
 * @param {Instance} instance
 * @returns {unknown | Promise<unknown>}
 */

/**
 * Options of the `run*` loops.
 * @typedef {object} RunOptions
 * @property {(line: string) => void} [log] where the SDK's own lines go (default: stderr,
 *   which Kiln attributes to the invocation being served)
 */

/**
 * Serves plain invocations with `handler` on the runtime socket from the environment,
 * until Kiln retires the container (exit code 0) or the runtime socket fails (a line on
 * stderr, exit code 1). Durable dispatches get error type `NotDurable` (see `serveAll`).
 * @param {Handler} handler
 * @returns {Promise<never>}
 */
function serve(handler) {
  checkFunction(handler, 'handler');
  return serveWith((runtime) => run(runtime, handler));
}

/**
 * Like `serve`, for durable instances: each dispatch runs `workflow` (see `Instance`).
 * Plain invocations get error type `NotDurable`.
 * @param {Workflow} workflow
 * @returns {Promise<never>}
 */
function serveDurable(workflow) {
  checkFunction(workflow, 'workflow');
  return serveWith((runtime) => runDurable(runtime, workflow));
}

/**
 * Like `serve`, for a function that answers plain invocations with `handler` and runs
 * durable instances with `workflow`.
 * @param {Handler} handler
 * @param {Workflow} workflow
 * @returns {Promise<never>}
 */
function serveAll(handler, workflow) {
  checkFunction(handler, 'handler');
  checkFunction(workflow, 'workflow');
  return serveWith((runtime) => runAll(runtime, handler, workflow));
}

/**
 * Serves plain invocations from `runtime` with `handler`, one at a time:
 *
 * - the returned response is posted; one Kiln cannot take (status outside 200–599, bad
 *   header, body neither string, bytes nor an (async) iterator) is reported as error type
 *   `InvalidResponse`;
 * - a streamed response (`stream()`) is sent chunk by chunk as it is produced; an error
 *   thrown while producing it goes to the log and ends the body with its `name` as
 *   `Kiln-Stream-Error` (the caller's connection is cut); serving goes on;
 * - a thrown error is reported to the error endpoint with its `name` as the error type
 *   (`HandlerError` for a thrown non-error) and its stack goes to the log; serving goes on;
 * - a durable dispatch is reported as error type `NotDurable`;
 * - when Kiln refuses a posted outcome (e.g. `404`: the invocation already timed out), or
 *   stops taking a streamed one (`410 caller_gone`, `408 stream_cut`), a line goes to the
 *   log and serving goes on.
 *
 * Resolves when Kiln answers `503` to `next` (the container is retiring); rejects when
 * the runtime socket fails or answers `next` unexpectedly.
 * @param {Runtime} runtime
 * @param {Handler} handler
 * @param {RunOptions} [options]
 * @returns {Promise<void>}
 */
function run(runtime, handler, options) {
  return runLoop(runtime, handler, null, options);
}

/**
 * Runs durable dispatches from `runtime` with `workflow`, like `run`:
 *
 * - the resolved output is posted as JSON and the instance completes with it;
 * - a thrown error is reported to the error endpoint, and the instance fails;
 * - a dispatch ended by an `Interrupt` (suspended, fenced, stopped) posts nothing, even if
 *   the workflow caught the interrupt and returned;
 * - a plain invocation is reported as error type `NotDurable`.
 * @param {Runtime} runtime
 * @param {Workflow} workflow
 * @param {RunOptions} [options]
 * @returns {Promise<void>}
 */
function runDurable(runtime, workflow, options) {
  return runLoop(runtime, null, workflow, options);
}

/**
 * `run` for plain invocations and `runDurable` for durable dispatches, in one loop.
 * @param {Runtime} runtime
 * @param {Handler} handler
 * @param {Workflow} workflow
 * @param {RunOptions} [options]
 * @returns {Promise<void>}
 */
function runAll(runtime, handler, workflow, options) {
  return runLoop(runtime, handler, workflow, options);
}

/** The loop behind every `run*`: a kind of invocation without a handler is `NotDurable`. */
async function runLoop(runtime, handler, workflow, options = {}) {
  const log = options.log || stderrLog;
  for (;;) {
    let invocation;
    try {
      invocation = await runtime.next();
    } catch (error) {
      if (error instanceof ApiError && error.status === 503) {
        return;
      }
      throw error;
    }
    const id = invocation.invocationId;
    try {
      if (!invocation.isDurable && handler) {
        await handlePlain(runtime, invocation, handler, log);
      } else if (invocation.isDurable && workflow) {
        await handleDurable(runtime, invocation, workflow, log);
      } else if (invocation.isDurable) {
        await runtime.fail(id, 'NotDurable', 'this function does not serve durable instances');
      } else {
        await runtime.fail(id, 'NotDurable', 'this function serves durable instances only, not plain invocations');
      }
    } catch (error) {
      if (!(error instanceof ApiError)) {
        throw error;
      }
      log(`invocation ${id}: Kiln did not take the outcome: ${error.message}`);
    }
  }
}

/** Runs one plain invocation and posts its outcome. */
async function handlePlain(runtime, invocation, handler, log) {
  const id = invocation.invocationId;
  let response;
  try {
    response = await handler(invocation);
  } catch (error) {
    log(`invocation ${id}: the handler failed: ${describeThrown(error)}`);
    await runtime.fail(id, errorTypeOf(error), errorMessageOf(error));
    return;
  }
  try {
    await runtime.respond(id, response, { log });
  } catch (error) {
    if (!(error instanceof InvalidResponseError)) {
      throw error;
    }
    log(`invocation ${id}: unusable response: ${error.message}`);
    await runtime.fail(id, 'InvalidResponse', error.message);
  }
}

/** Runs one durable dispatch and posts its outcome, if it has one to post. */
async function handleDurable(runtime, invocation, workflow, log) {
  const id = invocation.invocationId;
  let instance;
  try {
    instance = new Instance(runtime, invocation);
  } catch (failure) {
    await runtime.fail(id, errorTypeOf(failure), errorMessageOf(failure));
    return;
  }
  let output;
  let thrown = null;
  try {
    output = await workflow(instance);
  } catch (error) {
    thrown = { error };
  }
  const interrupt = instance.interrupted || (thrown && thrown.error instanceof Interrupt ? thrown.error : null);
  if (interrupt) {
    if (interrupt.kind !== 'suspended') {
      log(`instance ${instance.id}: dispatch ${id} ended: ${interrupt.message}`);
    }
    return;
  }
  if (thrown) {
    log(`instance ${instance.id}: dispatch ${id} failed: ${describeThrown(thrown.error)}`);
    await runtime.fail(id, errorTypeOf(thrown.error), errorMessageOf(thrown.error));
    return;
  }
  let body;
  try {
    body = JSON.stringify(output === undefined ? null : output);
  } catch (error) {
    await runtime.fail(id, 'InvalidOutput', `the output cannot be serialized as JSON: ${error.message}`);
    return;
  }
  await runtime.respond(id, { status: 200, headers: [['content-type', 'application/json']], body });
}

/** Connects from the environment, runs `serveLoop` and exits as `serve` describes. */
async function serveWith(serveLoop) {
  const runtime = Runtime.fromEnv();
  try {
    await serveLoop(runtime);
  } catch (error) {
    process.stderr.write(`kiln-sdk: runtime API failed: ${error.message}; exiting\n`);
    process.exit(1);
  }
  process.stderr.write('kiln-sdk: Kiln is retiring this container; exiting\n');
  process.exit(0);
}

function checkFunction(value, what) {
  if (typeof value !== 'function') {
    throw new TypeError(`the ${what} must be a function, not ${typeof value}`);
  }
}

module.exports = {
  ApiError,
  DEFAULT_SOCKET,
  Failure,
  Headers,
  Instance,
  Interrupt,
  InvalidResponseError,
  Invocation,
  Runtime,
  json,
  run,
  runAll,
  runDurable,
  serve,
  serveAll,
  serveDurable,
  stream,
  text,
};
