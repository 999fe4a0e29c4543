import type { Registry } from 'prom-client';

// Counters and histograms for the series fed once per request. prom-client's own take a label
// object on every call and validate, sort, hash and copy it (and a histogram makes a closure per
// observation); per request that was a dozen label objects for the garbage collector, the larger
// part of what metrics cost a request. These find a child by the label values joined into one key
// and keep plain numbers; the label object is made once per child. prom-client still owns the
// registry, the exposition format, the default metrics and the aggregation over workers: it reads
// these through `get()`, in the shape its own metrics return.

/** What prom-client's registry reads from a metric (the shape of its `get()`). */
interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

/** The separator of label values in a child's key: a character no label value here contains. */
const SEP = '\u0000';

abstract class Series<C> {
  readonly aggregator = 'sum';
  protected readonly children = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    // The registry keeps anything with a name and get(), as it keeps its own metrics.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected labelsOf(values: readonly string[]): Record<string, string> {
    const labels: Record<string, string> = {};
    this.labelNames.forEach((n, i) => (labels[n] = values[i]!));
    return labels;
  }

  protected static key(values: readonly string[]): string {
    return values.length === 1 ? values[0]! : values.join(SEP);
  }

  abstract get(): Promise<MetricData>;
}

interface CounterChild {
  labels: Record<string, string>;
  value: number;
}

/** A counter whose label values are given in the order of its label names. */
export class LeanCounter extends Series<CounterChild> {
  readonly type = 'counter';

  inc(values: readonly string[], by = 1): void {
    const k = Series.key(values);
    const c = this.children.get(k);
    if (c !== undefined) c.value += by;
    else this.children.set(k, { labels: this.labelsOf(values), value: by });
  }

  async get(): Promise<MetricData> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.children.values()].map((c) => ({ labels: c.labels, value: c.value })) };
  }
}

interface HistogramChild {
  labels: Record<string, string>;
  /** Per bucket, not cumulative; the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram whose label values are given in the order of its label names. */
export class LeanHistogram extends Series<HistogramChild> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[], private readonly buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  observe(values: readonly string[], v: number): void {
    if (!Number.isFinite(v)) return;
    const k = Series.key(values);
    let c = this.children.get(k);
    if (c === undefined) {
      c = { labels: this.labelsOf(values), counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.children.set(k, c);
    }
    let i = 0;
    while (i < this.buckets.length && v > this.buckets[i]!) i++;
    c.counts[i]!++;
    c.sum += v;
    c.count++;
  }

  async get(): Promise<MetricData> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.children.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i]!;
        values.push({ labels: { ...c.labels, le }, value: acc, metricName: bucket });
      });
      values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
