// Durable instance starts at a fixed arrival rate, then a check that they finish. Scenario
// `start` POSTs /v1/functions/{FUNCTION}/instances with the input INSTANCE_INPUT and expects
// 202 with an instance id. Scenario `settle` begins once `start` has ended, lists the newest
// SAMPLE instances of the function created during this run and polls
// GET /v1/instances/{id} until each has finished or SETTLE_TIMEOUT passes: the share that
// completed (instance_completed) and their time from creation to finish
// (instance_duration_ms, from Kiln's own timestamps) have thresholds.
//
// Environment (besides lib.js's): INSTANCE_INPUT JSON input ({}), RATE starts per second
// (50), DURATION (30s), SAMPLE (100), SETTLE_TIMEOUT seconds (60), DURATION_P95_MS (5000),
// POLL_P95_MS (1000); P95_MS and P99_MS bound the starts only;
// SMOKE=1 → 10/s for 5s, sample 20. The input must make the function complete: with the
// testbed, for example {"scenario":"replay","sleep_ms":100} or {"scenario":"checkpoints","count":3}.

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { BASE_URL, FUNCTION, SMOKE, SUMMARY_TREND_STATS, TENANT, baseThresholds, envNumber, envString, params, vusFor } from './lib.js';

const RATE = SMOKE ? 10 : envNumber('RATE', 50);
const DURATION = SMOKE ? '5s' : envString('DURATION', '30s');
const SAMPLE = Math.min(1000, SMOKE ? 20 : envNumber('SAMPLE', 100));
const SETTLE_TIMEOUT = envNumber('SETTLE_TIMEOUT', 60);
const INPUT = envString('INSTANCE_INPUT', '{}');
const FINISHED = ['completed', 'failed', 'cancelled'];

try {
  JSON.parse(INPUT);
} catch (error) {
  throw new Error(`INSTANCE_INPUT is not JSON: ${error}`);
}

const completed = new Rate('instance_completed');
const durationMs = new Trend('instance_duration_ms', true);

export const options = {
  scenarios: {
    start: Object.assign(
      {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: DURATION,
        exec: 'start',
      },
      vusFor(RATE),
    ),
    settle: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: 1,
      // A second after `start` stops starting instances; each of its iterations is a
      // single POST, so they are done by then.
      startTime: addSeconds(DURATION, 1),
      maxDuration: `${SETTLE_TIMEOUT + 30}s`,
      exec: 'settle',
    },
  },
  thresholds: Object.assign(startThresholds(), {
    // settle's polls are single reads, but a hundred at once; bounded apart from the starts.
    'http_req_duration{scenario:settle}': [`p(95)<${envNumber('POLL_P95_MS', 1000)}`],
    instance_completed: ['rate>0.99'],
    instance_duration_ms: [`p(95)<${envNumber('DURATION_P95_MS', 5000)}`],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

// The shared thresholds, with the latency bounds on the starts alone: a start is a few
// writes to PostgreSQL.
function startThresholds() {
  const thresholds = baseThresholds(200, 500);
  thresholds['http_req_duration{scenario:start}'] = thresholds.http_req_duration;
  delete thresholds.http_req_duration;
  return thresholds;
}

// k6 durations as written here: "30s", "2m", "1m30s", "500ms".
function addSeconds(duration, seconds) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let match;
  while ((match = pattern.exec(duration)) !== null) {
    total += Number(match[1]) * units[match[2]];
  }
  if (total === 0) {
    throw new Error(`DURATION ${duration} is not a k6 duration such as 30s or 2m`);
  }
  return `${Math.ceil(total + seconds)}s`;
}

export function setup() {
  // Only instances created from here on belong to this run.
  return { since: Date.now() };
}

export function start() {
  const response = http.post(
    `${BASE_URL}/v1/functions/${FUNCTION}/instances`,
    INPUT,
    params(TENANT, { headers: { 'Content-Type': 'application/json' }, tags: { name: 'start' } }),
  );
  check(response, {
    'status is 202': (r) => r.status === 202,
    'has an instance id': (r) => r.status === 202 && typeof r.json('id') === 'string',
  });
}

export function settle(data) {
  const list = http.get(
    `${BASE_URL}/v1/instances?function=${encodeURIComponent(FUNCTION)}&limit=${SAMPLE}`,
    params(TENANT, { tags: { name: 'list' } }),
  );
  check(list, { 'instances listed': (r) => r.status === 200 });
  if (list.status !== 200) {
    return;
  }
  // A second of slack for the clocks of k6 and kilnd when they run on different hosts.
  let pending = list.json('instances')
    .filter((instance) => Date.parse(instance.created_at) >= data.since - 1000)
    .map((instance) => instance.id);
  check(pending, { 'this run started instances': (ids) => ids.length > 0 });

  const deadline = Date.now() + SETTLE_TIMEOUT * 1000;
  while (pending.length > 0 && Date.now() < deadline) {
    const responses = http.batch(
      pending.map((id) => ['GET', `${BASE_URL}/v1/instances/${id}`, null, params(TENANT, { tags: { name: 'instance' } })]),
    );
    const still = [];
    responses.forEach((response, index) => {
      const instance = response.status === 200 ? response.json() : null;
      if (instance && FINISHED.includes(instance.status)) {
        completed.add(instance.status === 'completed');
        if (instance.status === 'completed') {
          durationMs.add(Date.parse(instance.finished_at) - Date.parse(instance.created_at));
        } else {
          console.warn(`instance ${instance.id} ${instance.status}: ${JSON.stringify(instance.error)}`);
        }
      } else {
        still.push(pending[index]);
      }
    });
    pending = still;
    if (pending.length > 0) {
      sleep(0.25);
    }
  }
  // Not finished within SETTLE_TIMEOUT counts against instance_completed.
  for (const id of pending) {
    console.warn(`instance ${id} not finished after ${SETTLE_TIMEOUT}s`);
    completed.add(false);
  }
}
