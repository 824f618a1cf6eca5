import { describe, expect, it } from 'vitest';
import { MetricsRegistry, createOriginMetrics, escapeLabel } from './metrics.ts';

describe('MetricsRegistry.render', () => {
  it('writes the Prometheus text format: HELP, TYPE, then one sample per labelled series', () => {
    const m = new MetricsRegistry();
    const requests = m.counter('app_requests_total', 'Requests by code.', ['model', 'code']);
    const depth = m.gauge('app_queue_depth', 'Waiting requests.', ['model']);
    requests.inc({ model: 'cls-test', code: '200' });
    requests.inc({ model: 'cls-test', code: '200' }, 2);
    requests.inc({ model: 'cls-test', code: '503' });
    depth.set({ model: 'cls-test' }, 7);
    expect(m.render()).toBe(
      [
        '# HELP app_requests_total Requests by code.',
        '# TYPE app_requests_total counter',
        'app_requests_total{model="cls-test",code="200"} 3',
        'app_requests_total{model="cls-test",code="503"} 1',
        '# HELP app_queue_depth Waiting requests.',
        '# TYPE app_queue_depth gauge',
        'app_queue_depth{model="cls-test"} 7',
        '',
      ].join('\n'),
    );
  });

  it('writes histograms with cumulative buckets, +Inf, _sum and _count', () => {
    const m = new MetricsRegistry();
    const h = m.histogram('app_batch_size', 'Rows per batch.', ['model'], [1, 2, 4]);
    for (const v of [1, 2, 2, 3, 9]) h.observe({ model: 'm' }, v);
    expect(m.render()).toBe(
      [
        '# HELP app_batch_size Rows per batch.',
        '# TYPE app_batch_size histogram',
        'app_batch_size_bucket{model="m",le="1"} 1',
        'app_batch_size_bucket{model="m",le="2"} 3',
        'app_batch_size_bucket{model="m",le="4"} 4',
        'app_batch_size_bucket{model="m",le="+Inf"} 5',
        'app_batch_size_sum{model="m"} 17',
        'app_batch_size_count{model="m"} 5',
        '',
      ].join('\n'),
    );
  });

  it('writes unlabelled series without braces', () => {
    const m = new MetricsRegistry();
    m.counter('app_up_total', 'Starts.', []).inc();
    m.histogram('app_seconds', 'Time.', [], [0.5]).observe({}, 0.25);
    expect(m.render()).toContain('app_up_total 1\n');
    expect(m.render()).toContain('app_seconds_bucket{le="0.5"} 1\n');
    expect(m.render()).toContain('app_seconds_sum 0.25\n');
  });

  it('escapes label values: backslash, double quote, newline', () => {
    expect(escapeLabel('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const m = new MetricsRegistry();
    m.counter('x_total', 'X.', ['model']).inc({ model: 'we"ird' });
    expect(m.render()).toContain('x_total{model="we\\"ird"} 1');
  });

  it('refuses metric names Prometheus would reject', () => {
    expect(() => new MetricsRegistry().counter('bad-name', 'x', [])).toThrow('invalid metric name bad-name');
  });
});

describe('createOriginMetrics', () => {
  it('has requests, errors, latency, batch size, run time and queue depth', () => {
    const m = createOriginMetrics();
    m.requests.inc({ route: 'infer', model: 'cls-test', code: '200' });
    m.errors.inc({ model: 'cls-test', code: 'OVERLOADED' });
    m.latency.observe({ model: 'cls-test' }, 0.003);
    m.batchSize.observe({ model: 'cls-test' }, 16);
    m.runSeconds.observe({ model: 'cls-test' }, 0.002);
    m.queueDepth.set({ model: 'cls-test' }, 0);
    const text = m.registry.render();
    for (const line of [
      '# TYPE latentsight_origin_requests_total counter',
      'latentsight_origin_requests_total{route="infer",model="cls-test",code="200"} 1',
      'latentsight_origin_errors_total{model="cls-test",code="OVERLOADED"} 1',
      'latentsight_origin_request_duration_seconds_bucket{model="cls-test",le="0.005"} 1',
      'latentsight_origin_batch_size_bucket{model="cls-test",le="16"} 1',
      'latentsight_origin_batch_size_bucket{model="cls-test",le="8"} 0',
      'latentsight_origin_batch_run_seconds_count{model="cls-test"} 1',
      'latentsight_origin_queue_depth{model="cls-test"} 0',
    ]) {
      expect(text).toContain(`${line}\n`);
    }
  });
});
