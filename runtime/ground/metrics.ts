import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's Prometheus registry (GET /metrics). The HTTP layer records requests; the runtime
 * registers gauges and counters whose values it reads at scrape time (actor counts, mailbox depth,
 * journal commits, relay lag, telemetry counts, MQTT connected), so nothing is computed between scrapes.
 * Each `createMetrics()` owns its registry: tests and several apps in one process never collide.
 */

export const HTTP_REQUESTS_TOTAL = 'fleet_http_requests_total';
export const HTTP_REQUEST_DURATION_SECONDS = 'fleet_http_request_duration_seconds';

/** Route templates (`/bookings/:id`), not raw URLs, so the label set stays small. */
type HttpLabel = 'route' | 'method' | 'status';

/** One labelled sample for a metric with labels. */
export interface LabelledValue<L extends string> {
  readonly labels: Partial<Record<L, string | number>>;
  readonly value: number;
}

/** A collect callback answers one number (metric without labels) or one value per label set. */
export type Sample<L extends string> = number | readonly LabelledValue<L>[];

interface MetricSpec<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

export interface GaugeSpec<L extends string> extends MetricSpec<L> {
  /** Read at every scrape; without it the caller sets the gauge itself. */
  readonly collect?: () => Sample<L>;
}

export interface ObservedCounterSpec<L extends string> extends MetricSpec<L> {
  /** The running total kept by its owner (e.g. the journal engine's commit count), read at scrape time. */
  readonly read: () => Sample<L>;
}

export interface HistogramSpec<L extends string> extends MetricSpec<L> {
  /** Upper bounds in the metric's unit; prom-client's defaults when absent. */
  readonly buckets?: readonly number[];
}

export interface Metrics {
  readonly registry: Registry;
  /** The `Content-Type` of `render()` (Prometheus text exposition format). */
  readonly contentType: string;
  /** One finished HTTP request; `route` is the route template or `unmatched`. */
  observeHttpRequest(route: string, method: string, statusCode: number, seconds: number): void;
  gauge<L extends string = never>(spec: GaugeSpec<L>): Gauge<L>;
  /** A counter the caller increments. */
  counter<L extends string = never>(spec: MetricSpec<L>): Counter<L>;
  /** A counter whose total lives elsewhere and is only read when scraped. */
  observedCounter<L extends string = never>(spec: ObservedCounterSpec<L>): Counter<L>;
  histogram<L extends string = never>(spec: HistogramSpec<L>): Histogram<L>;
  render(): Promise<string>;
}

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop lag, GC). Default true. */
  readonly defaultMetrics?: boolean;
}

// Seconds; from a cached GET (~0.5 ms) to an unlock that waits for the vehicle (UNLOCK_TIMEOUT_MS, 5 s).
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  const httpRequests = new Counter<HttpLabel>({
    name: HTTP_REQUESTS_TOTAL,
    help: 'HTTP requests answered, by route template, method and status code.',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const httpDuration = new Histogram<HttpLabel>({
    name: HTTP_REQUEST_DURATION_SECONDS,
    help: 'Time from receiving an HTTP request to sending its response.',
    labelNames: ['route', 'method', 'status'],
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });

  return {
    registry,
    contentType: registry.contentType,
    observeHttpRequest(route, method, statusCode, seconds) {
      const labels = { route, method, status: statusCode };
      httpRequests.inc(labels);
      httpDuration.observe(labels, seconds);
    },
    gauge<L extends string = never>(spec: GaugeSpec<L>): Gauge<L> {
      const { collect } = spec;
      return new Gauge<L>({
        name: spec.name,
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        registers: [registry],
        ...(collect && {
          collect(this: Gauge<L>) {
            const sample = collect();
            if (typeof sample === 'number') {
              this.set(sample);
              return;
            }
            // Label sets that disappeared (a passivated actor kind, a closed connection) must not linger.
            this.reset();
            for (const { labels, value } of sample) this.set(labels, value);
          },
        }),
      });
    },
    counter<L extends string = never>(spec: MetricSpec<L>): Counter<L> {
      return new Counter<L>({ name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
    },
    observedCounter<L extends string = never>(spec: ObservedCounterSpec<L>): Counter<L> {
      const { read } = spec;
      return new Counter<L>({
        name: spec.name,
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        registers: [registry],
        collect(this: Counter<L>) {
          const sample = read();
          // prom-client counters only go up by inc(); the owner's total is already monotonic, so
          // reset + inc(total) exposes exactly that total.
          this.reset();
          if (typeof sample === 'number') this.inc(sample);
          else for (const { labels, value } of sample) this.inc(labels, value);
        },
      });
    },
    histogram<L extends string = never>(spec: HistogramSpec<L>): Histogram<L> {
      return new Histogram<L>({
        name: spec.name,
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        registers: [registry],
        ...(spec.buckets && { buckets: [...spec.buckets] }),
      });
    },
    render: () => registry.metrics(),
  };
}
