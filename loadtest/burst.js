// A burst against a function with no warm containers: the arrival rate jumps from 0 to
// PEAK at once and holds, so the first callers wait for cold starts while the rest queue
// behind max_concurrency. Run it against a function uploaded just before (min_warm=0), named
// by FUNCTION; scripts/loadtest.sh uploads a fresh one for each run.
//
// 429 function_busy is Kiln's documented answer when the queue is full or a caller waited
// KILN_QUEUE_TIMEOUT_MS: it counts as an expected status here, not a failed request, and has
// its own metric and threshold (function_busy, rate below MAX_BUSY_RATE, default 0.05).
// Anything else that is not 200 is a failure.
//
// Environment (besides lib.js's): PEAK requests per second (500), HOLD (10s), MAX_BUSY_RATE;
// SMOKE=1 → 50/s for 3s.

import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { BASE_URL, FUNCTION, SMOKE, SUMMARY_TREND_STATS, TENANT, baseThresholds, envNumber, envString, health, invokeUrl, params, vusFor } from './lib.js';

const PEAK = SMOKE ? 50 : envNumber('PEAK', 500);
const HOLD = SMOKE ? '3s' : envString('HOLD', '10s');

const functionBusy = new Rate('function_busy');

http.setResponseCallback(http.expectedStatuses(200, 429));

export const options = {
  scenarios: {
    burst: Object.assign(
      {
        executor: 'ramping-arrival-rate',
        startRate: 0,
        timeUnit: '1s',
        // A zero-length stage is the jump; the second holds the peak.
        stages: [
          { target: PEAK, duration: '0s' },
          { target: PEAK, duration: HOLD },
        ],
      },
      vusFor(PEAK),
    ),
  },
  // The first callers include a cold start (about 20 ms each on the reference machine) and
  // the queue behind it; the bounds are wider than warm.js's for that.
  thresholds: Object.assign(baseThresholds(1000, 3000), {
    function_busy: [`rate<${envNumber('MAX_BUSY_RATE', 0.05)}`],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const URL = invokeUrl(TENANT, FUNCTION, 'echo');

export function setup() {
  const fn = http.get(`${BASE_URL}/v1/functions/${FUNCTION}`, params(TENANT, { tags: { name: 'setup' } }));
  if (fn.status !== 200) {
    throw new Error(`function ${FUNCTION} of tenant ${TENANT} is not there (HTTP ${fn.status}): upload it first`);
  }
  const before = health();
  return { coldStartsBefore: coldStarts(before) };
}

export default function () {
  const body = `burst ${__VU}-${__ITER}`;
  const response = http.post(URL, body, params(TENANT, { tags: { name: 'echo' } }));
  functionBusy.add(response.status === 429);
  if (response.status === 429) {
    check(response, { '429 says when to retry': (r) => r.headers['Retry-After'] !== undefined });
  } else {
    check(response, {
      'status is 200': (r) => r.status === 200,
      'body echoed': (r) => r.body === body,
    });
  }
}

export function teardown(data) {
  const after = coldStarts(health());
  if (data.coldStartsBefore !== null && after !== null) {
    console.log(`cold starts during the burst (all functions): ${after - data.coldStartsBefore}`);
  }
}

function coldStarts(figures) {
  const value = figures && figures.containers ? figures.containers.cold_starts_total : undefined;
  return typeof value === 'number' ? value : null;
}
