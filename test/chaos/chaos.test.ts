import { describe, expect, it } from 'vitest';
import { renderReport } from './harness/report.js';
import { DEFAULT_OPTIONS, runChaos } from './harness/run.js';

/**
 * A bounded chaos run (docs/chaos.md): 20 kill -9 of the server under load and restarts, Kafka and
 * Mosquitto stopped and restarted, both shard workers killed, the disk filled and freed. Every
 * invariant must hold and nothing acknowledged may be lost. It needs root for the small tmpfs (CI runs
 * as root) and a Kafka installation (the jars `npm test` fetched for its own broker).
 */
describe('chaos: kills and faults under load', () => {
  it('keeps every acknowledged booking, unlock and public event', { timeout: 420_000 }, async () => {
    const progress: string[] = [];
    const report = await runChaos({ ...DEFAULT_OPTIONS, kills: 20, seconds: 20, seed: 12, log: (line) => progress.push(line) });
    const summary = `${renderReport(report)}\n${progress.join('\n')}`;
    console.log(renderReport(report));

    expect(report.kills.total, summary).toBeGreaterThanOrEqual(20);
    expect(report.kills.withRequestsInFlight, summary).toBeGreaterThan(0);
    expect(report.kills.withRelayBacklog, summary).toBeGreaterThan(0);
    expect(report.faults.map((fault) => fault.name)).toEqual([
      'disk full → 503 storage-full, recovery by itself',
      'Kafka stopped and restarted',
      'Mosquitto stopped and restarted',
      'shard workers killed (SIGUSR2 hook), supervisor restarts them',
      'reservation expired across a restart',
    ]);
    for (const fault of report.faults) {
      expect(fault.ok, `${fault.name}: ${fault.detail}\n${summary}`).toBe(true);
      expect(fault.detail, summary).not.toMatch(/^skipped/);
    }
    expect(report.bookings.acknowledged, summary).toBeGreaterThan(20);
    expect(report.bookings.unlocked, summary).toBeGreaterThan(0);
    expect(report.bookings.expired, summary).toBeGreaterThan(0);
    expect(report.events.checked, summary).toBeGreaterThan(0);
    expect(report.bookings.notProblemJson, summary).toEqual([]);
    for (const invariant of report.invariants) expect(invariant.ok, `${invariant.name}: ${invariant.examples.join('; ')}\n${summary}`).toBe(true);
    expect(report.invariants).toHaveLength(10);
    expect(report.lost, summary).toBe(0);
    expect(report.ok, summary).toBe(true);
  });
});
