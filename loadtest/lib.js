// Shared helpers for Kiln's k6 load tests (loadtest/*.js): where Kiln is, which tenants and
// tokens to use, and the knobs every scenario reads from the environment. Run the
// scenarios through scripts/loadtest.sh, which starts a kilnd and fills these in.
//
// Environment:
//   KILN_URL      base URL of kilnd or of nginx in front of it (default http://127.0.0.1:3001)
//   KILN_TOKENS   JSON object {"tenant": "tenant JWT", ...} (required)
//   TENANT        tenant for the single-tenant scenarios (default: the first in KILN_TOKENS)
//   FUNCTION      function to call (default testbed)
//   SMOKE=1       a few seconds at a low rate, for CI
//   P95_MS, P99_MS  latency thresholds in milliseconds (each scenario has its defaults)

import http from 'k6/http';

export const BASE_URL = (__ENV.KILN_URL || 'http://127.0.0.1:3001').replace(/\/+$/, '');
export const SMOKE = __ENV.SMOKE === '1';
export const FUNCTION = __ENV.FUNCTION || 'testbed';

// Parsed once per VU at init; a bad value stops the test before any request.
export const TOKENS = parseTokens(__ENV.KILN_TOKENS);
export const TENANTS = Object.keys(TOKENS);
export const TENANT = __ENV.TENANT || TENANTS[0];

if (!TOKENS[TENANT]) {
  throw new Error(`TENANT ${TENANT} has no token in KILN_TOKENS`);
}

function parseTokens(text) {
  if (!text) {
    throw new Error('KILN_TOKENS is not set: give a JSON object {"tenant": "token", ...}');
  }
  let tokens;
  try {
    tokens = JSON.parse(text);
  } catch (error) {
    throw new Error(`KILN_TOKENS is not JSON: ${error}`);
  }
  if (tokens === null || typeof tokens !== 'object' || Array.isArray(tokens) || Object.keys(tokens).length === 0) {
    throw new Error('KILN_TOKENS must be a non-empty JSON object {"tenant": "token", ...}');
  }
  return tokens;
}

// An environment variable as a number, or the default when unset.
export function envNumber(name, fallback) {
  const text = __ENV[name];
  if (text === undefined || text === '') {
    return fallback;
  }
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${name} must be a non-negative number, got ${text}`);
  }
  return value;
}

export function envString(name, fallback) {
  const text = __ENV[name];
  return text === undefined || text === '' ? fallback : text;
}

// Request parameters with the tenant's bearer token; `extra` adds tags, headers or a
// per-request responseCallback.
export function params(tenant, extra) {
  const more = extra || {};
  return Object.assign({}, more, {
    headers: Object.assign({ Authorization: `Bearer ${TOKENS[tenant]}` }, more.headers || {}),
  });
}

// URL of an invocation: /fn/{tenant}/{function}/{path}.
export function invokeUrl(tenant, fn, path) {
  return `${BASE_URL}/fn/${tenant}/${fn}/${path.replace(/^\/+/, '')}`;
}

// VUs for an open-model (arrival-rate) executor: enough that a latency spike does not
// drop iterations at once, bounded so a stalled server cannot make k6 exhaust the machine.
export function vusFor(rate) {
  return {
    preAllocatedVUs: Math.max(5, Math.ceil(rate / 10)),
    maxVUs: Math.max(50, Math.ceil(rate * 2)),
  };
}

// Thresholds every scenario shares: under 1 % failed requests (as each scenario defines a
// failure) and its latency bounds, which P95_MS and P99_MS override.
export function baseThresholds(p95Ms, p99Ms) {
  const thresholds = {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  };
  // A smoke run has too few requests for a stable p99 (one slow request on a shared CI
  // machine would fail it): it checks that requests succeed, full runs check latency.
  if (!SMOKE) {
    thresholds.http_req_duration = [`p(95)<${envNumber('P95_MS', p95Ms)}`, `p(99)<${envNumber('P99_MS', p99Ms)}`];
  }
  return thresholds;
}

// p(99) is not in k6's summary by default; scripts/loadtest.sh reads it from the export.
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

// GET /api/health/detailed, or null when kilnd does not answer it.
export function health() {
  const response = http.get(`${BASE_URL}/api/health/detailed`, { tags: { name: 'health' } });
  if (response.status !== 200) {
    return null;
  }
  try {
    return response.json();
  } catch (error) {
    return null;
  }
}
