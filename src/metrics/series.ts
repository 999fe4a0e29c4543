import type { Registry } from 'prom-client';

// Counters and histograms for the series fed once per request. prom-client's own take a label
// object on every call and validate, sort, hash and copy it (and a histogram makes a closure per
// observation); per request that was a dozen label objects for the garbage collector, the larger
// part of what metrics cost a request. These find a child by its label values, one map per label,
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

abstract class Series<C> {
  readonly aggregator = 'sum';
  /** Children by label value, one level per label: no key is built (a join, then its hash) per observation. */
  private readonly tree = new Map<string, unknown>();
  protected readonly children: C[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    // The registry keeps anything with a name and get(), as it keeps its own metrics.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The child of these label values (in the order of the label names), made on first use. */
  protected child(values: readonly string[]): C {
    let node = this.tree;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = node.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) node.set(values[i]!, (next = new Map()));
      node = next;
    }
    let c = node.get(values[last]!) as C | undefined;
    if (c === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i]!));
      c = this.make(labels);
      node.set(values[last]!, c);
      this.children.push(c);
    }
    return c;
  }

  protected abstract make(labels: Record<string, string>): C;

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
    this.child(values).value += by;
  }

  protected make(labels: Record<string, string>): CounterChild {
    return { labels, value: 0 };
  }

  async get(): Promise<MetricData> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.children.map((c) => ({ labels: c.labels, value: c.value })) };
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
    const c = this.child(values);
    let i = 0;
    while (i < this.buckets.length && v > this.buckets[i]!) i++;
    c.counts[i]!++;
    c.sum += v;
    c.count++;
  }

  protected make(labels: Record<string, string>): HistogramChild {
    return { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  async get(): Promise<MetricData> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.children) {
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
