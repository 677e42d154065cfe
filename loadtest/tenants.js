// Mixed tenants at a fixed total arrival rate: each iteration picks a tenant of
// KILN_TOKENS at random and invokes that tenant's function (the same name, FUNCTION, in
// every tenant). Requests are tagged by tenant, with latency and failure thresholds per
// tenant, so one tenant's slowdown is not averaged away by the others. A share of the
// iterations (CROSS_TENANT_RATE, default 0.05, with two tenants or more; always the first)
// also calls another tenant's function with its own token and expects 403 wrong_tenant:
// isolation must hold under load too.
//
// Environment (besides lib.js's): RATE total requests per second (200), DURATION (30s);
// SMOKE=1 → 20/s for 5s.

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { FUNCTION, SMOKE, SUMMARY_TREND_STATS, TENANTS, baseThresholds, envNumber, envString, invokeUrl, params, vusFor } from './lib.js';

const RATE = SMOKE ? 20 : envNumber('RATE', 200);
const DURATION = SMOKE ? '5s' : envString('DURATION', '30s');
const CROSS_TENANT_RATE = TENANTS.length > 1 ? envNumber('CROSS_TENANT_RATE', 0.05) : 0;
// Every Nth iteration of the whole test, counted from the first, so even a smoke run probes.
const PROBE_EVERY = CROSS_TENANT_RATE > 0 ? Math.max(1, Math.round(1 / CROSS_TENANT_RATE)) : 0;
const P95_MS = envNumber('P95_MS', 50);
const P99_MS = envNumber('P99_MS', 100);

function perTenantThresholds() {
  const thresholds = baseThresholds(P95_MS, P99_MS);
  for (const tenant of TENANTS) {
    thresholds[`http_req_failed{tenant:${tenant}}`] = ['rate<0.01'];
    thresholds[`http_req_duration{tenant:${tenant}}`] = [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`];
  }
  if (PROBE_EVERY > 0) {
    thresholds['checks{probe:cross_tenant}'] = ['rate==1'];
  }
  return thresholds;
}

export const options = {
  scenarios: {
    tenants: Object.assign(
      {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: DURATION,
      },
      vusFor(RATE),
    ),
  },
  thresholds: perTenantThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export default function () {
  const tenant = pick(TENANTS);
  const body = `tenant ${tenant} ${__VU}-${__ITER}`;
  const response = http.post(
    invokeUrl(tenant, FUNCTION, 'echo'),
    body,
    params(tenant, { tags: { name: 'echo', tenant: tenant } }),
  );
  check(
    response,
    {
      'status is 200': (r) => r.status === 200,
      'body echoed': (r) => r.body === body,
    },
    { tenant: tenant },
  );

  if (PROBE_EVERY > 0 && exec.scenario.iterationInTest % PROBE_EVERY === 0) {
    const other = pick(TENANTS.filter((name) => name !== tenant));
    const probe = http.post(
      invokeUrl(other, FUNCTION, 'echo'),
      'must not arrive',
      // Tagged apart from the tenants' own traffic; 403 is the expected answer here.
      params(tenant, { tags: { name: 'cross-tenant', probe: 'cross_tenant' }, responseCallback: http.expectedStatuses(403) }),
    );
    check(
      probe,
      {
        'cross-tenant call refused with 403 wrong_tenant': (r) => r.status === 403 && errorCode(r) === 'wrong_tenant',
      },
      { probe: 'cross_tenant' },
    );
  }
}

function errorCode(response) {
  try {
    return response.json('error.code');
  } catch (error) {
    return null;
  }
}
