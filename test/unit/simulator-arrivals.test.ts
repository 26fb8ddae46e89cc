import { describe, expect, it } from 'vitest';
import { assignBehaviours, exponentialGapMs, parseRideDistribution, pickJourneyKind } from '../../simulator/arrivals.js';
import { dashboardLines } from '../../simulator/dashboard.js';
import { InvariantMonitor } from '../../simulator/invariants.js';
import { seededRandom } from '../../simulator/random.js';
import { LatencyRecorder } from '../../simulator/report.js';

describe('open-loop arrivals', () => {
  it('gaps are exponential with mean 1/rate: mean, coefficient of variation 1, Poisson counts per second', () => {
    const random = seededRandom(42);
    const rate = 50;
    const gaps = Array.from({ length: 20_000 }, () => exponentialGapMs(rate, random));
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
    expect(mean).toBeGreaterThan(19.4);
    expect(mean).toBeLessThan(20.6);
    // An exponential's standard deviation equals its mean; a paced (closed or uniform) arrival would be far below.
    expect(sd / mean).toBeGreaterThan(0.95);
    expect(sd / mean).toBeLessThan(1.05);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(0);
    // Arrivals in each whole second: a Poisson count has variance = mean (index of dispersion 1).
    const perSecond = new Map<number, number>();
    let at = 0;
    for (const gap of gaps) {
      at += gap;
      perSecond.set(Math.floor(at / 1000), (perSecond.get(Math.floor(at / 1000)) ?? 0) + 1);
    }
    const counts = [...perSecond.values()].slice(0, -1);
    const countMean = counts.reduce((a, b) => a + b, 0) / counts.length;
    const variance = counts.reduce((a, b) => a + (b - countMean) ** 2, 0) / counts.length;
    expect(countMean).toBeGreaterThan(48);
    expect(countMean).toBeLessThan(52);
    expect(variance / countMean).toBeGreaterThan(0.75);
    expect(variance / countMean).toBeLessThan(1.3);
  });

  it('the same seed gives the same arrivals', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    expect(Array.from({ length: 5 }, () => exponentialGapMs(10, a))).toEqual(Array.from({ length: 5 }, () => exponentialGapMs(10, b)));
  });
});

describe('ride lengths', () => {
  const random = seededRandom(3);
  it('fixed, uniform and exponential', () => {
    expect(parseRideDistribution('2').sampleMs(random)).toBe(2000);
    const uniform = Array.from({ length: 1000 }, () => parseRideDistribution('1-3').sampleMs(random));
    expect(Math.min(...uniform)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...uniform)).toBeLessThanOrEqual(3000);
    const exponential = parseRideDistribution('exp:4');
    const samples = Array.from({ length: 5000 }, () => exponential.sampleMs(random));
    const mean = samples.reduce((x, y) => x + y, 0) / samples.length;
    expect(mean).toBeGreaterThan(3700);
    expect(mean).toBeLessThan(4300);
  });

  it.each(['', 'abc', '3-1', '-2', 'exp:', 'exp:x', '1-2-3'])('refuses %j', (text) => {
    expect(() => parseRideDistribution(text)).toThrow(RangeError);
  });
});

describe('behaviour mixes', () => {
  it('journey kinds come in their shares', () => {
    const random = seededRandom(9);
    const counts = { ride: 0, cancel: 0, retry: 0, race: 0, outside: 0 };
    for (let draw = 0; draw < 20_000; draw += 1) counts[pickJourneyKind({ cancel: 0.1, retry: 0.2, race: 0.05, outside: 0.15 }, random)] += 1;
    expect(counts.cancel / 20_000).toBeCloseTo(0.1, 1);
    expect(counts.retry / 20_000).toBeCloseTo(0.2, 1);
    expect(counts.race / 20_000).toBeCloseTo(0.05, 1);
    expect(counts.outside / 20_000).toBeCloseTo(0.15, 1);
    expect(counts.ride / 20_000).toBeCloseTo(0.5, 1);
  });

  it('device behaviours: exact, disjoint shares on seeded random devices, the rest answer', () => {
    const mix = { silent: 0.1, slow: 0.05, flapping: 0.05, duplicate: 0.02, reject: 0.01 };
    const behaviours = assignBehaviours(1000, mix, seededRandom(1));
    const count = (name: string) => behaviours.filter((behaviour) => behaviour === name).length;
    expect({ silent: count('silent'), slow: count('slow'), flapping: count('flapping'), duplicate: count('duplicate'), reject: count('reject'), answer: count('answer') }).toEqual({
      silent: 100,
      slow: 50,
      flapping: 50,
      duplicate: 20,
      reject: 10,
      answer: 770,
    });
    expect(assignBehaviours(1000, mix, seededRandom(1))).toEqual(behaviours);
    // Spread over the fleet, not the first hundred ids.
    expect(behaviours.slice(0, 100).filter((behaviour) => behaviour === 'silent').length).toBeLessThan(30);
  });
});

describe('invariant monitor', () => {
  it('a replayed 201 and a booking after a release are no double booking; a second live one is', () => {
    const monitor = new InvariantMonitor();
    monitor.bookingConfirmed('bk_1', 'v1');
    monitor.bookingConfirmed('bk_1', 'v1');
    monitor.bookingReleasing('bk_1');
    monitor.bookingConfirmed('bk_2', 'v1');
    expect(monitor.finish()['double-booking'].broken).toBe(0);
    monitor.bookingConfirmed('bk_3', 'v1');
    expect(monitor.finish()['double-booking']).toEqual({ broken: 1, samples: ['v1: bk_3 confirmed while bk_2 held it'] });
  });

  it('5xx the contract gives for an absent or silent device are not server errors', () => {
    const monitor = new InvariantMonitor();
    monitor.httpAnswer('POST /bookings/bk_1/unlock', 504, 'unlock-timed-out');
    monitor.httpAnswer('POST /bookings', 503, 'vehicle-offline');
    expect(monitor.finish()['server-error'].broken).toBe(0);
    monitor.httpAnswer('POST /bookings', 503, 'shard-unavailable');
    expect(monitor.finish()['server-error'].broken).toBe(1);
  });
});

describe('dashboard', () => {
  it('one block: devices, journeys/s, in flight, errors by kind, p50/p99 per step, MQTT round trip', () => {
    const rtt = new LatencyRecorder();
    rtt.recordUs(2000);
    const summary = { count: 1, p50Ms: 12, p90Ms: 20, p95Ms: 30, p99Ms: 40, maxMs: 50, meanMs: 15 };
    const lines = dashboardLines(
      {
        phase: 'riding',
        elapsedMs: 12_345,
        devices: { devices: 10, online: 9, connects: 11, reconnects: 1, drops: 2, connectFailures: 0, refused: 0, commands: { ok: 3, malformed: 0, 'bad-signature': 0, expired: 0 }, replies: 3, telemetrySent: 5, acks: 8, threads: 2, heapUsed: 0 },
        journeys: { elapsedMs: 12_000, offered: 30, finished: 25, inFlight: 5, outcomes: { completed: 20 }, errors: { 'end: 500 internal': 2 }, steps: { search: summary, book: summary, unlock: summary, end: summary, cancel: summary },
          area: { restricted: false, riddenInside: 0, outsideTries: 0, outsideRefused: 0, outsideAccepted: 0, outsideOther: {}, endedInsideAfterRefusal: 0, notPlaced: {} },
        },
        roundTrip: rtt,
      },
      { offeredPerS: 10, finishedPerS: 8.5 },
    );
    expect(lines.join('\n')).toContain('9/10 online');
    expect(lines.join('\n')).toContain('10.0/s offered   8.5/s done   5 in flight');
    expect(lines.join('\n')).toContain('end: 500 internal ×2');
    expect(lines.join('\n')).toContain('book 12/40');
    expect(lines.join('\n')).toMatch(/PUBLISH→PUBACK p50 2\.0 ms/);
  });
});
