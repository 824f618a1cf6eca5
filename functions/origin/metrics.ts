/**
 * Prometheus metrics in the text exposition format (version 0.0.4), written by hand: counters,
 * gauges and histograms with labels, and the origin's own set of them.
 */

type Labels = Readonly<Record<string, string>>;

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  render(out: string[]): void;
}

/** A set of metric families rendered together, in registration order. */
export class MetricsRegistry {
  private readonly families: Family[] = [];

  /**
   * @example
   * const requests = metrics.counter('app_requests_total', 'Requests.', ['code']); requests.inc({ code: '200' });
   */
  counter(name: string, help: string, labelNames: readonly string[]): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[]): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  /** `buckets`: upper bounds, ascending; +Inf is implicit. */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** Every family, `# HELP` and `# TYPE` lines first, one sample per line, ending with a newline. */
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
      f.render(out);
    }
    return `${out.join('\n')}\n`;
  }

  private add<F extends Family>(f: F): F {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(f.name)) throw new Error(`invalid metric name ${f.name}`);
    this.families.push(f);
    return f;
  }
}

/** The Content-Type of `render()`'s output. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

abstract class Labelled<V> {
  protected readonly series = new Map<string, { labels: string; value: V }>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {}

  protected slot(labels: Labels, init: () => V): { labels: string; value: V } {
    const key = this.labelNames.map((n) => labels[n] ?? '').join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      s = { labels: this.labelNames.map((n) => `${n}="${escapeLabel(labels[n] ?? '')}"`).join(','), value: init() };
      this.series.set(key, s);
    }
    return s;
  }
}

export class Counter extends Labelled<number> implements Family {
  readonly type = 'counter';
  inc(labels: Labels = {}, by = 1): void {
    this.slot(labels, () => 0).value += by;
  }
  get(labels: Labels = {}): number {
    return this.slot(labels, () => 0).value;
  }
  render(out: string[]): void {
    for (const s of this.series.values()) out.push(`${this.name}${braces(s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Gauge extends Labelled<number> implements Family {
  readonly type = 'gauge';
  set(labels: Labels, value: number): void {
    this.slot(labels, () => 0).value = value;
  }
  render(out: string[]): void {
    for (const s of this.series.values()) out.push(`${this.name}${braces(s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Histogram extends Labelled<{ counts: number[]; sum: number; count: number }> implements Family {
  readonly type = 'histogram';
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1])) throw new Error(`${name}: buckets must ascend`);
  }
  observe(labels: Labels, value: number): void {
    const h = this.slot(labels, () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 })).value;
    // Stored per bucket, made cumulative when rendered.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) h.counts[i]++;
    h.sum += value;
    h.count++;
  }
  render(out: string[]): void {
    for (const s of this.series.values()) {
      const sep = s.labels ? ',' : '';
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.value.counts[i];
        out.push(`${this.name}_bucket{${s.labels}${sep}le="${formatNumber(b)}"} ${cumulative}`);
      });
      out.push(`${this.name}_bucket{${s.labels}${sep}le="+Inf"} ${s.value.count}`);
      out.push(`${this.name}_sum${braces(s.labels)} ${formatNumber(s.value.sum)}`);
      out.push(`${this.name}_count${braces(s.labels)} ${s.value.count}`);
    }
  }
}

function braces(labels: string): string {
  return labels ? `{${labels}}` : '';
}

/**
 * A label value as the text format needs it: backslash, double quote and newline escaped.
 *
 * @example
 * escapeLabel('a"b') // 'a\\"b'
 */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The origin's metrics. */
export interface OriginMetrics {
  readonly registry: MetricsRegistry;
  /** Every HTTP request: route (infer, metadata, ready, health, server, metrics, other), model, status code. */
  readonly requests: Counter;
  /** Failed requests by model and error code (BAD_REQUEST, OVERLOADED, ...). */
  readonly errors: Counter;
  /** Inference requests, arrival to response, by model. */
  readonly latency: Histogram;
  /** Rows per batch run, by model. */
  readonly batchSize: Histogram;
  /** Time of each batch run on the model's worker, by model. */
  readonly runSeconds: Histogram;
  /** Requests waiting in each model's queue. */
  readonly queueDepth: Gauge;
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * @example
 * const metrics = createOriginMetrics(); metrics.requests.inc({ route: 'infer', model: 'cls-test', code: '200' });
 */
export function createOriginMetrics(): OriginMetrics {
  const registry = new MetricsRegistry();
  return {
    registry,
    requests: registry.counter('latentsight_origin_requests_total', 'HTTP requests by route, model and status code.', ['route', 'model', 'code']),
    errors: registry.counter('latentsight_origin_errors_total', 'Failed requests by model and error code.', ['model', 'code']),
    latency: registry.histogram('latentsight_origin_request_duration_seconds', 'Inference request latency, arrival to response, by model.', ['model'], SECONDS),
    batchSize: registry.histogram('latentsight_origin_batch_size', 'Rows per batch run, by model.', ['model'], [1, 2, 4, 8, 16, 32, 64, 128]),
    runSeconds: registry.histogram('latentsight_origin_batch_run_seconds', 'Duration of each batch run on the model worker, by model.', ['model'], SECONDS),
    queueDepth: registry.gauge('latentsight_origin_queue_depth', 'Requests waiting in the model queue.', ['model']),
  };
}
