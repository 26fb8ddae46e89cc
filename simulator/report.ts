import * as hdr from 'hdr-histogram-js';
import type { InvariantReport } from './invariants.js';
import type { CommandVerdict } from './light-device.js';

/** Percentiles of one operation, milliseconds with µs resolution. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
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
    // HDR answers a percentile as the top of its bucket, which can lie above the largest value seen.
    const max = this.histogram.maxValue;
    const ms = (us: number) => Math.round(Math.min(us, max)) / 1000;
    const count = this.histogram.totalCount;
    if (count === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
    return {
      count,
      p50Ms: ms(this.histogram.getValueAtPercentile(50)),
      p90Ms: ms(this.histogram.getValueAtPercentile(90)),
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

/**
 * The operating area as the riders met it (simulator/journeys.ts). Every ride of a type the area
 * restricts ends at a place where its type may end one: the rider rides there, waits until the server
 * shows the vehicle there, then ends.
 */
export interface AreaReport {
  /** The server publishes an area that forbids some type to end a ride somewhere. */
  readonly restricted: boolean;
  /** Rides taken to an allowed place before their end. */
  readonly riddenInside: number;
  /** `outside` journeys that tried to end where their type may not. */
  readonly outsideTries: number;
  /** ... and got 409 ride-end-not-allowed, as they must. */
  readonly outsideRefused: number;
  /** ... and ended: the `end-outside-accepted` invariant broke. */
  readonly outsideAccepted: number;
  /** ... and got another answer (by outcome). */
  readonly outsideOther: Record<string, number>;
  /** Refused outside, then ended inside. */
  readonly endedInsideAfterRefusal: number;
  /** Rides that could not be placed: no allowed (or forbidden) place for the type, or the server never showed the vehicle there. */
  readonly notPlaced: Record<string, number>;
}

/** The end of a run (`npm run sim`): printed as a table, written as JSON with `--report FILE`. */
export interface SimulationReport {
  readonly startedAt: string;
  readonly durationS: number;
  readonly settings: Record<string, unknown>;
  readonly devices: {
    readonly requested: number;
    readonly withCredentials: number;
    readonly registered: number;
    readonly alreadyRegistered: number;
    readonly registrationFailed: number;
    readonly behaviours: Record<string, number>;
    readonly threads: number;
    readonly onlineAtStart: number;
    readonly secondsToConnect: number;
    /** From every device online to the server showing a sample of them online; null: not within the settle time. */
    readonly secondsUntilServerSawThemOnline: number | null;
    readonly minOnlineWhileRiding: number;
    readonly onlineAtEnd: number;
    readonly connects: number;
    readonly reconnects: number;
    readonly drops: number;
    readonly connectFailures: number;
    readonly refused: number;
    readonly commands: Record<CommandVerdict, number>;
    readonly replies: number;
    readonly telemetrySent: number;
    /** The whole simulator process (every thread) with every device online. */
    readonly rssBytes: number;
    readonly rssPerDeviceBytes: number;
    /** What the process grew by from just before the devices started: the devices' own cost. */
    readonly rssAddedPerDeviceBytes: number;
  };
  readonly journeys: {
    readonly offered: number;
    /** Arrivals a second over the customer phase (open loop: what `--rate` asked for, give or take chance). */
    readonly offeredPerS: number;
    readonly finished: number;
    /** Journeys that completed or were cancelled on purpose, a second. */
    readonly succeededPerS: number;
    readonly inFlightAtEnd: number;
    readonly outcomes: Record<string, number>;
  };
  readonly area: AreaReport;
  /** Per HTTP step, every answer; `commandDelivery`: a command's `issuedAt` → its arrival at the device; `mqttRoundTrip`: a device's QoS 1 PUBLISH → PUBACK. */
  readonly latency: Record<'search' | 'book' | 'unlock' | 'end' | 'cancel' | 'commandDelivery' | 'mqttRoundTrip', LatencySummary>;
  readonly errors: Record<string, number>;
  readonly invariants: InvariantReport;
  /** Every invariant held: the exit code is 0. */
  readonly ok: boolean;
}

/** The report as a terminal table. */
export function reportTable(report: SimulationReport): string {
  const d = report.devices;
  const j = report.journeys;
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(26)} ${value}`);
  lines.push(`fleet simulation ${report.startedAt}, ${report.durationS} s`);
  lines.push('devices');
  row('online at start / min / end', `${d.onlineAtStart} / ${d.minOnlineWhileRiding} / ${d.onlineAtEnd} of ${d.withCredentials} (${d.threads} threads, ${d.secondsToConnect} s to connect)`);
  row('server saw them online', d.secondsUntilServerSawThemOnline === null ? 'NOT within the settle time' : `${d.secondsUntilServerSawThemOnline} s after the last connect`);
  row('connects, drops, failures', `${d.connects} connects (${d.reconnects} again), ${d.drops} drops, ${d.connectFailures} failed attempts, ${d.refused} refused`);
  row('behaviours', Object.entries(d.behaviours).map(([name, count]) => `${name} ${count}`).join(', '));
  row('commands received', Object.entries(d.commands).map(([name, count]) => `${name} ${count}`).join(', ') + `; ${d.replies} replies, ${d.telemetrySent} telemetry`);
  row('memory', `${(d.rssBytes / 1048576).toFixed(0)} MB RSS = ${(d.rssPerDeviceBytes / 1024).toFixed(1)} KB per device (${(d.rssAddedPerDeviceBytes / 1024).toFixed(1)} KB added by the devices)`);
  lines.push('journeys');
  row('offered / succeeded', `${j.offered} offered (${j.offeredPerS}/s), ${j.finished} finished, ${j.succeededPerS}/s completed or cancelled, ${j.inFlightAtEnd} still running`);
  for (const [outcome, count] of Object.entries(j.outcomes)) row(`  ${outcome}`, String(count));
  const a = report.area;
  lines.push('operating area');
  if (!a.restricted) row('none that restricts ends', '');
  else {
    row('ridden inside to end', String(a.riddenInside));
    row('ends tried outside', `${a.outsideTries}: ${a.outsideRefused} refused, ${a.outsideAccepted} ACCEPTED, ${a.endedInsideAfterRefusal} then ended inside`);
    for (const [outcome, count] of Object.entries(a.outsideOther)) row(`  ${outcome}`, String(count));
    for (const [reason, count] of Object.entries(a.notPlaced)) row(`  not placed: ${reason}`, String(count));
  }
  lines.push(`latency (ms)                 ${'count'.padStart(7)} ${'p50'.padStart(9)} ${'p90'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}`);
  for (const [step, summary] of Object.entries(report.latency)) {
    row(step, `${String(summary.count).padStart(7)} ${fmt(summary.p50Ms)} ${fmt(summary.p90Ms)} ${fmt(summary.p99Ms)} ${fmt(summary.maxMs)}`);
  }
  lines.push('errors');
  if (Object.keys(report.errors).length === 0) row('none', '');
  for (const [kind, count] of Object.entries(report.errors)) row(`  ${kind}`, String(count));
  lines.push('invariants');
  for (const [name, result] of Object.entries(report.invariants)) {
    row(name, result.broken === 0 ? 'held' : `BROKEN ${result.broken}× — ${result.samples.join('; ')}`);
  }
  lines.push(report.ok ? 'every invariant held' : 'AN INVARIANT BROKE (exit 1)');
  return lines.join('\n');
}

const fmt = (ms: number): string => ms.toFixed(1).padStart(9);
