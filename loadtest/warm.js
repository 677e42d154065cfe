// Warm invocations at a fixed arrival rate: POST a small body to the testbed's /echo route
// of one tenant's function and expect it back. Open model (constant-arrival-rate), so a
// slow Kiln shows up as latency and dropped iterations instead of quietly fewer requests.
//
// Environment (besides lib.js's): RATE requests per second (200), DURATION (30s);
// SMOKE=1 → 20/s for 5s. Expects the function to have warm containers already
// (scripts/loadtest.sh uploads it with min_warm).

import http from 'k6/http';
import { check } from 'k6';
import { FUNCTION, SMOKE, SUMMARY_TREND_STATS, TENANT, baseThresholds, envNumber, envString, invokeUrl, params, vusFor } from './lib.js';

const RATE = SMOKE ? 20 : envNumber('RATE', 200);
const DURATION = SMOKE ? '5s' : envString('DURATION', '30s');

export const options = {
  scenarios: {
    warm: Object.assign(
      {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: DURATION,
      },
      vusFor(RATE),
    ),
  },
  // Warm invocations cost well under a millisecond inside Kiln (docs/BENCHMARKS.md); these
  // bounds leave room for k6 and kilnd sharing a small machine.
  thresholds: baseThresholds(50, 100),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const URL = invokeUrl(TENANT, FUNCTION, 'echo');

export default function () {
  const body = `warm ${__VU}-${__ITER}`;
  const response = http.post(URL, body, params(TENANT, { tags: { name: 'echo' } }));
  check(response, {
    'status is 200': (r) => r.status === 200,
    'body echoed': (r) => r.body === body,
  });
}
