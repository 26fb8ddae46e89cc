import type { InvariantResult } from './invariants.js';

/** What a chaos run prints as a table and writes as JSON (docs/chaos.md). */
export interface FaultResult {
  readonly name: string;
  readonly ok: boolean;
  /** What was seen, in one line. */
  readonly detail: string;
}

export interface KillRecord {
  readonly at: string;
  /** Why this moment: `load`, `kafka-down`, `relay-draining`, `expiry-probe`, `final`. */
  readonly phase: string;
  /** HTTP requests of the customers in flight when SIGKILL was sent (> 0: a kill mid-commit is possible). */
  readonly requestsInFlight: number;
  /** Journal positions the relays had not had acknowledged by Kafka (last /metrics sample, ≤ 1 s old). */
  readonly relayLag: number | null;
  /** Milliseconds from spawn to the first HTTP answer of the next process. */
  readonly restartMs: number;
}

export interface ChaosReport {
  readonly ok: boolean;
  /** Only for a failed run: a copy of the journals and the server log. */
  readonly evidenceDir: string | null;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly settings: { readonly kills: number; readonly seconds: number; readonly shards: number; readonly seed: number; readonly vehicles: number; readonly customers: number; readonly reservationWindowMs: number };
  readonly kills: {
    readonly total: number;
    readonly withRequestsInFlight: number;
    readonly withRelayBacklog: number;
    readonly restartMsMedian: number;
    readonly restartMsMax: number;
    readonly list: readonly KillRecord[];
  };
  readonly faults: readonly FaultResult[];
  readonly bookings: { readonly acknowledged: number; readonly unlocked: number; readonly ended: number; readonly cancelled: number; readonly expired: number; readonly answers: Readonly<Record<string, number>>; readonly notProblemJson: readonly string[] };
  readonly events: { readonly checked: number; readonly kafkaRecords: number; readonly duplicatesFolded: number };
  readonly lost: number;
  readonly invariants: readonly InvariantResult[];
}

export function renderReport(report: ChaosReport): string {
  const lines: string[] = [];
  const row = (label: string, value: string, ok?: boolean): void => {
    lines.push(`${ok === undefined ? '  ' : ok ? '✓ ' : '✗ '}${label.padEnd(86)} ${value}`);
  };
  lines.push(`chaos run ${report.ok ? 'PASSED' : 'FAILED'} in ${(report.durationMs / 1000).toFixed(1)} s (shards ${report.settings.shards}, seed ${report.settings.seed})`);
  row('kills (kill -9, restart each time)', String(report.kills.total));
  row('  with customer requests in flight (mid-commit)', String(report.kills.withRequestsInFlight));
  row('  with a relay backlog (mid-relay)', String(report.kills.withRelayBacklog));
  row('  restart, median / max ms', `${report.kills.restartMsMedian} / ${report.kills.restartMsMax}`);
  for (const fault of report.faults) row(`fault: ${fault.name}`, fault.detail, fault.ok);
  row('bookings acknowledged 201 / unlocked / ended / cancelled / expired', `${report.bookings.acknowledged} / ${report.bookings.unlocked} / ${report.bookings.ended} / ${report.bookings.cancelled} / ${report.bookings.expired}`);
  row('error answers that were not problem+json', String(report.bookings.notProblemJson.length), report.bookings.notProblemJson.length === 0);
  row('public events checked / Kafka records / duplicates folded', `${report.events.checked} / ${report.events.kafkaRecords} / ${report.events.duplicatesFolded}`);
  row('lost', String(report.lost), report.lost === 0);
  for (const invariant of report.invariants) {
    row(invariant.name, `${invariant.checked} checked, ${invariant.violations} broken`, invariant.ok);
    for (const example of invariant.examples) lines.push(`      ${example}`);
  }
  const answers = Object.entries(report.bookings.answers).sort(([a], [b]) => (a < b ? -1 : 1));
  lines.push(`  answers: ${answers.map(([answer, count]) => `${answer} ×${count}`).join(', ')}`);
  return lines.join('\n');
}
