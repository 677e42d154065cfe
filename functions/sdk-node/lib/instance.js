// One durable dispatch as its handler sees it: the instance's input and stored checkpoints,
// and the steps (checkpoint, sleep, wait for an event) that reuse them on replay.
'use strict';

const { Failure, Interrupt } = require('./errors');

/**
 * One dispatch of a durable instance. Kiln replays the handler from the start on every
 * dispatch; each step below resolves to its stored result when the dispatch has one, and
 * does the work (and stores it) only when it does not. Await every step before the next,
 * and ask for the same keys in the same order on every replay.
 *
 * A step throws an `Interrupt` when the dispatch cannot go on (the instance went to sleep,
 * the dispatch is stale): let it propagate, the serve loop ends the dispatch.
 */
class Instance {
  /**
   * The instance behind durable dispatch `invocation`, making its calls over `runtime`
   * (`serveDurable` does this). Throws a `Failure` `NotDurable` for a plain invocation and
   * `InvalidDispatch` when the body is not `{"input": ..., "checkpoints": {...}}`.
   * @param {import('./runtime').Runtime} runtime
   * @param {import('./invocation').Invocation} invocation
   */
  constructor(runtime, invocation) {
    if (!invocation.isDurable) {
      throw new Failure('NotDurable', 'this invocation is not a durable instance dispatch');
    }
    const dispatch = parseDispatch(invocation.body);
    /** The connection the durable calls go over. */
    this._runtime = runtime;
    /** Every checkpoint this dispatch knows: those Kiln sent with it plus those stored since. */
    this._checkpoints = new Map(Object.entries(dispatch.checkpoints));
    /** How often each event name has been waited for in this dispatch: it numbers the wait keys. */
    this._waits = new Map();
    /** The `Interrupt` that ended this dispatch, if one did: every later step throws it again. */
    this._interrupt = null;
    /** The dispatch's invocation id, which durable calls are addressed to. */
    this.invocationId = invocation.invocationId;
    /** The instance id (`Kiln-Instance-Id`), the same on every dispatch: a good idempotency key. */
    this.id = invocation.instanceId;
    /** How many times the instance has been dispatched, this one included (from 1). */
    this.attempt = invocation.attempt;
    /** The instance's input, as given when it was started. */
    this.input = dispatch.input;
    /** The invocation this dispatch came as (deadline in `deadlineMs`). */
    this.invocation = invocation;
  }

  /** The `Interrupt` that ended this dispatch, or `null` while it goes on. */
  get interrupted() {
    return this._interrupt;
  }

  /**
   * The value stored under `key`, or `undefined` when this dispatch knows none. The sleep
   * and wait keys hold Kiln's own values (`{"wake_at_ms": ...}`, `{"event": ..., "payload": ...}`).
   * @param {string} key
   */
  stored(key) {
    return this._checkpoints.get(key);
  }

  /**
   * A step whose result is stored under `key`: the stored result when there is one (and
   * `work` does not run), otherwise `work`'s result, stored before it is returned. If
   * another dispatch stored the key first, its value is returned: the first write wins.
   * Either way the result is the stored JSON value (`undefined` is stored as `null`, a
   * `Date` as its string), so the first run and every replay see the same thing.
   *
   * `work` may run more than once across dispatches (if the container dies before the
   * result is stored), so make it idempotent. An error thrown by `work` fails the instance.
   * @template T
   * @param {string} key
   * @param {() => T | Promise<T>} work
   * @returns {Promise<unknown>}
   */
  async checkpoint(key, work) {
    this._checkLive();
    if (this._checkpoints.has(key)) {
      return this._checkpoints.get(key);
    }
    const result = await work();
    let value;
    try {
      value = JSON.parse(JSON.stringify(result === undefined ? null : result));
    } catch (error) {
      throw new Failure('BadCheckpoint', `checkpoint \`${key}\` cannot be stored as JSON: ${error.message}`);
    }
    const stored = await this._call(() => this._runtime.checkpoint(this.invocationId, key, value));
    if (!this._checkpoints.has(key)) {
      this._checkpoints.set(key, stored);
    }
    return this._checkpoints.get(key);
  }

  /**
   * Sleeps `ms` milliseconds from the first time Kiln sees `key`. Resolves at once when
   * the stored wake time has passed; otherwise the instance is suspended (this throws an
   * `Interrupt`) and replayed after the wake time, its container free meanwhile.
   * @param {string} key
   * @param {number} ms
   */
  async sleep(key, ms) {
    await this._sleep(key, { durationMs: wholeMs(ms, 'sleep duration', Math.ceil) });
  }

  /**
   * Like `sleep`, until `at` (Unix milliseconds or a `Date`).
   * @param {string} key
   * @param {number | Date} at
   */
  async sleepUntil(key, at) {
    const unixMs = at instanceof Date ? at.getTime() : at;
    await this._sleep(key, { wakeAtMs: wholeMs(unixMs, 'wake time', Math.floor) });
  }

  /**
   * Waits for an event signal named `name` (`POST /v1/instances/{id}/signals`) for at most
   * `timeoutMs` from the first time this wait is reached: resolves to the event's payload
   * (`null` when it had none), or `null` when the timeout passed first (look at
   * `stored(key)` to tell the two apart). Events sent before the wait count; each is
   * delivered to one wait, in the order sent. Until one arrives the instance is suspended
   * (this throws an `Interrupt`) and replayed when it does.
   *
   * The wait is stored under key `event:{name}:{n}`, where `n` counts the waits for `name`
   * in this dispatch from 1 (the second wait for `approved` is `event:approved:2`).
   * @param {string} name
   * @param {number} timeoutMs
   */
  async waitForEvent(name, timeoutMs) {
    this._checkLive();
    const count = (this._waits.get(name) || 0) + 1;
    this._waits.set(name, count);
    const key = `event:${name}:${count}`;
    if (this._checkpoints.has(key)) {
      return eventOutcome(key, this._checkpoints.get(key));
    }
    const timeout = wholeMs(timeoutMs, 'wait timeout', Math.ceil);
    const reply = await this._call(() => this._runtime.wait(this.invocationId, key, name, timeout));
    if (reply.suspended) {
      throw this._end(new Interrupt('suspended', `the instance waits for event \`${name}\``));
    }
    this._checkpoints.set(key, reply.value);
    return eventOutcome(key, reply.value);
  }

  async _sleep(key, wake) {
    this._checkLive();
    const stored = this._checkpoints.get(key);
    if (stored && Number.isFinite(stored.wake_at_ms) && stored.wake_at_ms <= Date.now()) {
      return;
    }
    const reply = await this._call(() => this._runtime.sleep(this.invocationId, key, wake));
    if (reply.suspended) {
      throw this._end(new Interrupt('suspended', `the instance sleeps (\`${key}\`) until ${reply.wakeAtMs}`));
    }
    this._checkpoints.set(key, reply.value);
  }

  /** Runs a durable call; an `Interrupt` it throws ends the dispatch. */
  async _call(call) {
    try {
      return await call();
    } catch (error) {
      throw error instanceof Interrupt ? this._end(error) : error;
    }
  }

  _end(interrupt) {
    this._interrupt = this._interrupt || interrupt;
    return this._interrupt;
  }

  _checkLive() {
    if (this._interrupt) {
      throw this._interrupt;
    }
  }
}

/** The `{input, checkpoints}` body of a durable dispatch. */
function parseDispatch(body) {
  let dispatch;
  try {
    dispatch = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw invalidDispatch(error.message);
  }
  if (dispatch === null || typeof dispatch !== 'object' || Array.isArray(dispatch)) {
    throw invalidDispatch('it is not an object');
  }
  const checkpoints = dispatch.checkpoints === undefined || dispatch.checkpoints === null ? {} : dispatch.checkpoints;
  if (typeof checkpoints !== 'object' || Array.isArray(checkpoints)) {
    throw invalidDispatch('its checkpoints are not an object');
  }
  return { input: dispatch.input === undefined ? null : dispatch.input, checkpoints };
}

function invalidDispatch(why) {
  return new Failure('InvalidDispatch', `the dispatch body is not {"input": ..., "checkpoints": {...}}: ${why}`);
}

/** A stored wait: `{"event": ..., "payload": p}` is `p`, `{"timed_out": true}` is `null`. */
function eventOutcome(key, stored) {
  if (stored !== null && typeof stored === 'object' && 'event' in stored) {
    return stored.payload === undefined ? null : stored.payload;
  }
  if (stored !== null && typeof stored === 'object' && stored.timed_out === true) {
    return null;
  }
  throw new Failure('BadCheckpoint', `checkpoint \`${key}\` holds ${JSON.stringify(stored)}, which is not the outcome of a wait`);
}

/** A non-negative whole number of milliseconds, rounded with `round`. */
function wholeMs(ms, what, round) {
  if (typeof ms !== 'number' || Number.isNaN(ms)) {
    throw new TypeError(`the ${what} must be a number of milliseconds, not ${typeof ms}`);
  }
  return Math.max(0, Math.min(round(ms), Number.MAX_SAFE_INTEGER));
}

module.exports = { Instance };
