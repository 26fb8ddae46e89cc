import * as hdr from 'hdr-histogram-js';

/** Percentiles of one operation, milliseconds with µs resolution. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** Latencies of one operation in an HDR histogram: 1 µs … 2 min at 3 significant digits, fixed memory. */
export class LatencyRecorder {
  private readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

  recordUs(latencyUs: number): void {
    // Clamped: a value beyond the range would throw and a simulation must not die on an outlier.
    this.histogram.recordValue(Math.min(120_000_000, Math.max(1, Math.round(latencyUs))));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const ms = (us: number) => Math.round(us) / 1000;
    const count = this.histogram.totalCount;
    if (count === 0) return { count: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
    return {
      count,
      p50Ms: ms(this.histogram.getValueAtPercentile(50)),
      p95Ms: ms(this.histogram.getValueAtPercentile(95)),
      p99Ms: ms(this.histogram.getValueAtPercentile(99)),
      maxMs: ms(this.histogram.maxValue),
      meanMs: ms(this.histogram.mean),
    };
  }
}

/** Counts by reason (`vehicle-unavailable`, `unlock-timed-out`, …), as a plain object for JSON. */
export class ReasonCounts {
  private readonly counts = new Map<string, number>();

  add(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  get total(): number {
    let total = 0;
    for (const count of this.counts.values()) total += count;
    return total;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Errors that are not an HTTP answer (network, timeouts, 5xx other than the contract's): counted, a few kept. */
export class ErrorLog {
  private countNow = 0;
  readonly samples: string[] = [];

  constructor(private readonly keep = 10) {}

  add(message: string): void {
    this.countNow += 1;
    if (this.samples.length < this.keep) this.samples.push(message);
  }

  get count(): number {
    return this.countNow;
  }

  toJSON(): { count: number; samples: string[] } {
    return { count: this.countNow, samples: [...this.samples] };
  }
}

export interface VehicleFleetReport {
  readonly requested: number;
  readonly registered: number;
  readonly alreadyRegistered: number;
  readonly registrationFailed: number;
  readonly connected: number;
  readonly connectFailed: number;
  readonly silent: number;
  readonly offline: number;
  readonly connectMs: LatencySummary;
  readonly telemetrySent: number;
  readonly telemetryFailed: number;
  readonly commandsReceived: number;
  readonly repliesSent: number;
}

export interface CustomerReport {
  readonly customers: number;
  readonly bookings: { readonly attempted: number; readonly confirmed: number; readonly rejected: Record<string, number> };
  readonly unlocks: { readonly attempted: number; readonly ok: number; readonly timedOut: number; readonly failed: Record<string, number> };
  readonly ends: { readonly attempted: number; readonly completed: number; readonly failed: Record<string, number> };
  readonly cancels: {
    readonly attempted: number;
    readonly cancelled: number;
    /** Cancelled on purpose (the `cancelRatio` share), not as clean-up after a failed unlock. */
    readonly byChoice: number;
    readonly failed: Record<string, number>;
  };
  /** Traces of failed calls (first few), for `npm run trace -- <traceId>`. */
  readonly failedTraceIds: readonly string[];
  readonly latency: { readonly book: LatencySummary; readonly unlock: LatencySummary; readonly end: LatencySummary; readonly cancel: LatencySummary };
  readonly errors: { readonly count: number; readonly samples: readonly string[] };
}

export interface SimulationReport {
  readonly startedAt: string;
  readonly durationS: number;
  readonly options: Record<string, unknown>;
  readonly vehicles: VehicleFleetReport;
  readonly customers: CustomerReport;
  readonly throughput: {
    /** Every HTTP call the customers made, per second of the customer phase. */
    readonly requestsPerS: number;
    readonly bookingsPerS: number;
    readonly unlocksPerS: number;
    readonly completedRidesPerS: number;
    readonly telemetryPerS: number;
  };
  readonly errors: number;
}

export function buildReport(parts: {
  readonly startedAt: Date;
  readonly customerPhaseS: number;
  readonly totalS: number;
  readonly options: Record<string, unknown>;
  readonly vehicles: VehicleFleetReport;
  readonly customers: CustomerReport;
}): SimulationReport {
  const { customers, vehicles } = parts;
  const seconds = Math.max(parts.customerPhaseS, 0.001);
  const rate = (count: number, over = seconds) => Math.round((count / over) * 10) / 10;
  const requests = customers.bookings.attempted + customers.unlocks.attempted + customers.ends.attempted + customers.cancels.attempted;
  return {
    startedAt: parts.startedAt.toISOString(),
    durationS: Math.round(parts.totalS * 1000) / 1000,
    options: parts.options,
    vehicles,
    customers,
    throughput: {
      requestsPerS: rate(requests),
      bookingsPerS: rate(customers.bookings.confirmed),
      unlocksPerS: rate(customers.unlocks.ok),
      completedRidesPerS: rate(customers.ends.completed),
      telemetryPerS: rate(vehicles.telemetrySent, Math.max(parts.totalS, 0.001)),
    },
    errors: customers.errors.count + vehicles.registrationFailed + vehicles.connectFailed,
  };
}
