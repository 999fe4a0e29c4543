import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { LeanCounter, LeanHistogram } from '../src/metrics/series.js';

test('lean series: the exposition prom-client writes for them, le inclusive, cumulative buckets, labels by name', async () => {
  const r = new Registry();
  const c = new LeanCounter('t_requests_total', 'Requests', ['route', 'status'], r);
  const h = new LeanHistogram('t_seconds', 'Seconds', ['route'], [0.1, 1], r);
  c.inc(['chat', '200']);
  c.inc(['chat', '200'], 2);
  c.inc(['messages', '429']);
  for (const v of [0.1, 0.5, 1, 3, Number.NaN]) h.observe(['chat'], v);
  const text = await r.metrics();
  assert.equal(
    text,
    [
      '# HELP t_requests_total Requests',
      '# TYPE t_requests_total counter',
      't_requests_total{route="chat",status="200"} 3',
      't_requests_total{route="messages",status="429"} 1',
      '',
      '# HELP t_seconds Seconds',
      '# TYPE t_seconds histogram',
      't_seconds_bucket{route="chat",le="0.1"} 1',
      't_seconds_bucket{route="chat",le="1"} 3',
      't_seconds_bucket{route="chat",le="+Inf"} 4',
      't_seconds_sum{route="chat"} 4.6',
      't_seconds_count{route="chat"} 4',
      '',
    ].join('\n'),
  );
  // Workers' registries are merged by the primary from this JSON, as prom-client's own metrics are.
  const json = await r.getMetricsAsJSON();
  assert.deepEqual(json.map((m) => [m.name, m.type, m.aggregator]), [['t_requests_total', 'counter', 'sum'], ['t_seconds', 'histogram', 'sum']]);
});
