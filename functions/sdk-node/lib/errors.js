// The ways a Kiln function's work can end other than with a result: a handler's own
// failure (`Failure`), a durable dispatch cut short (`Interrupt`), and a refusal by the
// runtime API (`ApiError`).
'use strict';

/** The error type reported for a thrown value that is not an `Error`. */
const DEFAULT_ERROR_TYPE = 'HandlerError';

/** Longest part of a refusal's body kept in an `ApiError`. */
const ERROR_BODY_LIMIT = 1024;

/**
 * An error with an explicit error type: `throw new Failure('InvalidInput', 'no user')`
 * makes the caller get `502 function_error` with error type `InvalidInput`; the message
 * only goes to Kiln's log. Any thrown `Error` works the same way with its `name` as the
 * error type; `Failure` just sets the name.
 */
class Failure extends Error {
  /**
   * @param {string} errorType reported as `errorType` (`error.name`)
   * @param {string} message reported as `errorMessage`, logged by Kiln, not returned
   */
  constructor(errorType, message) {
    super(message);
    this.name = String(errorType);
  }

  /** The reported error type (the same as `name`). */
  get errorType() {
    return this.name;
  }
}

/**
 * Thrown by a durable step when the dispatch cannot go on: the instance was suspended
 * (`kind` `suspended`: a sleep or wait was answered `202`), the dispatch is stale (`fenced`:
 * `409 instance_fenced` or `404 unknown_invocation`), or Kiln stopped the instance itself
 * (`stopped`, e.g. `413 value_too_large`). The serve loop catches it and posts nothing, as
 * the contract asks; do not swallow it (if you catch errors around a step, rethrow it:
 * `if (error instanceof Interrupt) throw error`). Once a dispatch is interrupted, every
 * later step throws it again and the handler's result is not posted.
 */
class Interrupt extends Error {
  /**
   * @param {'suspended' | 'fenced' | 'stopped'} kind
   * @param {string} message
   */
  constructor(kind, message) {
    super(message);
    this.name = 'KilnInterrupt';
    /** Why the dispatch ended: `suspended`, `fenced` or `stopped`. */
    this.kind = kind;
  }
}

/**
 * The runtime API answered with an unexpected status, e.g. `404 unknown_invocation` when
 * the invocation already timed out, or `503 container_retiring` to `next`.
 */
class ApiError extends Error {
  /**
   * @param {number} status the HTTP status Kiln answered
   * @param {Buffer} body Kiln's answer, usually `{"error":{"code":"...","message":"..."}}`
   */
  constructor(status, body) {
    const text = body.subarray(0, ERROR_BODY_LIMIT).toString('utf8');
    super(`runtime API answered ${status}: ${text}`);
    this.name = 'ApiError';
    /** The HTTP status. */
    this.status = status;
    /** The start of Kiln's answer, as text. */
    this.body = text;
    /** The `error.code` of Kiln's answer, or `null` when it has none. */
    this.code = errorCode(body);
  }
}

/** The error type to report for a thrown value: an error's `name`, else `HandlerError`. */
function errorTypeOf(thrown) {
  if (thrown !== null && typeof thrown === 'object' && typeof thrown.name === 'string' && thrown.name) {
    return thrown.name;
  }
  return DEFAULT_ERROR_TYPE;
}

/** The error message to report for a thrown value. */
function errorMessageOf(thrown) {
  if (thrown !== null && typeof thrown === 'object' && typeof thrown.message === 'string') {
    return thrown.message;
  }
  return String(thrown);
}

/** A thrown value for the log: an error's stack, else its type and message. */
function describeThrown(thrown) {
  return thrown instanceof Error && thrown.stack ? thrown.stack : `${errorTypeOf(thrown)}: ${errorMessageOf(thrown)}`;
}

/** The `error.code` of a `{"error":{"code":"...","message":"..."}}` body, or null. */
function errorCode(body) {
  const parsed = parseJson(body);
  const code = parsed && parsed.error && parsed.error.code;
  return typeof code === 'string' ? code : null;
}

/** `code: message` of an error body, or the whole `ApiError` text when it is not one. */
function errorSummary(status, body) {
  const parsed = parseJson(body);
  const error = parsed && parsed.error;
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    return `${error.code}: ${error.message}`;
  }
  return new ApiError(status, body).message;
}

function parseJson(body) {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

module.exports = {
  ApiError,
  DEFAULT_ERROR_TYPE,
  Failure,
  Interrupt,
  describeThrown,
  errorMessageOf,
  errorSummary,
  errorTypeOf,
};
