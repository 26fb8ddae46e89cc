import { describe, expect, it } from 'vitest';
import type { VehicleEvent } from '../../actors/vehicle/decider.js';
import { CommandOutcomeCounter, commandHistory, type CommandJournalEntry } from '../../actors/vehicle/command-history.js';

/** Command states derived from a vehicle's journal, as GET /vehicles/:id/commands and /metrics show them. */

const T = 1_800_000_000_000;
const V = 'v-1';
const B = 'bk_s0_0123456789abcdef01234567';

let seq = 0;
function at(ms: number, event: VehicleEvent, traceId: string | null = null): CommandJournalEntry {
  seq += 1;
  return { sequenceNumber: seq, createdAt: T + ms, traceId, data: event };
}
const requested = (ms: number, commandId: string, type: 'UnlockRequested' | 'LockRequested' = 'UnlockRequested', bookingId = B) =>
  at(ms, { type, vehicleId: V, bookingId, commandId, at: T + ms, expiresAt: T + ms + 5000 }, `trace-${commandId}`);
const unlocked = (ms: number, commandId: string) => at(ms, { type: 'VehicleUnlocked', vehicleId: V, bookingId: B, commandId, at: T + ms });
const timedOut = (ms: number, commandId: string, reason: 'timeout' | 'offline' = 'timeout') => at(ms, { type: 'UnlockTimedOut', vehicleId: V, bookingId: B, commandId, reason, at: T + ms });

describe('commandHistory', () => {
  it('a confirmed UNLOCK is SUCCEEDED with who asked and its round trip', () => {
    const [command] = commandHistory([at(0, { type: 'VehicleReserved', vehicleId: V, bookingId: B, at: T }), requested(10, 'c1'), unlocked(95, 'c1')], T + 100, 20);
    expect(command).toEqual({
      commandId: 'c1',
      vehicleId: V,
      command: 'UNLOCK',
      state: 'SUCCEEDED',
      bookingId: B,
      traceId: 'trace-c1',
      requestedAt: T + 10,
      expiresAt: T + 5010,
      settledAt: T + 95,
      roundTripMs: 85,
      reason: null,
    });
  });

  it('timed out, then answered late: LATE_SUCCESS; a timeout never answered stays TIMED_OUT', () => {
    const history = commandHistory([requested(0, 'c1'), timedOut(5000, 'c1'), requested(6000, 'c2'), timedOut(11_000, 'c2'), unlocked(11_500, 'c1')], T + 12_000, 20);
    expect(history.map((command) => [command.commandId, command.state, command.roundTripMs, command.reason])).toEqual([
      ['c2', 'TIMED_OUT', null, 'timeout'],
      ['c1', 'LATE_SUCCESS', 11_500, 'timeout'],
    ]);
  });

  it('REJECTED by the device with its reason; EXPIRED when the vehicle went offline or the booking let go', () => {
    const history = commandHistory(
      [
        requested(0, 'c1'),
        at(40, { type: 'DeviceRejectedCommand', vehicleId: V, bookingId: B, commandId: 'c1', command: 'UNLOCK', reason: 'door blocked', at: T + 40 }),
        requested(100, 'c2'),
        timedOut(200, 'c2', 'offline'),
        requested(300, 'c3'),
        at(400, { type: 'VehicleReleased', vehicleId: V, bookingId: B, reason: 'cancelled', at: T + 400 }),
      ],
      T + 500,
      20,
    );
    expect(history.map((command) => [command.commandId, command.state, command.reason])).toEqual([
      ['c3', 'EXPIRED', 'released'],
      ['c2', 'EXPIRED', 'offline'],
      ['c1', 'REJECTED', 'door blocked'],
    ]);
    expect(history[2]!.roundTripMs).toBe(40);
  });

  it('SENT while it may still be answered; EXPIRED once past its deadline with no outcome journaled', () => {
    const entries = [requested(0, 'c1', 'LockRequested')];
    expect(commandHistory(entries, T + 4000, 20)[0]).toMatchObject({ command: 'LOCK', state: 'SENT', settledAt: null });
    expect(commandHistory(entries, T + 60_000, 20)[0]).toMatchObject({ state: 'EXPIRED', settledAt: T + 5000, reason: 'no outcome journaled' });
  });

  it('newest first, cut to the limit', () => {
    const entries = ['a', 'b', 'c'].flatMap((id, index) => [requested(index * 100, id), unlocked(index * 100 + 10, id)]);
    expect(commandHistory(entries, T + 1000, 2).map((command) => command.commandId)).toEqual(['c', 'b']);
  });
});

describe('CommandOutcomeCounter', () => {
  it('counts every command sent and each state it reaches; a late success counts as TIMED_OUT, then LATE_SUCCESS', () => {
    const counter = new CommandOutcomeCounter(() => []);
    for (const entry of [requested(0, 'c1'), unlocked(50, 'c1'), requested(100, 'c2'), timedOut(5100, 'c2'), unlocked(5200, 'c2')]) counter.onEvent(entry);
    expect(counter.counts()).toEqual({ SENT: 2, SUCCEEDED: 1, REJECTED: 0, TIMED_OUT: 1, EXPIRED: 0, LATE_SUCCESS: 1 });
  });

  it('an answer to a command issued before it started is classified from the journal it is given', () => {
    const earlier = [requested(0, 'old'), timedOut(5000, 'old')];
    const asked: Array<[string, number]> = [];
    const counter = new CommandOutcomeCounter((vehicleId, beforeSeq) => {
      asked.push([vehicleId, beforeSeq]);
      return earlier;
    });
    const late = unlocked(6000, 'old');
    counter.onEvent(late);
    expect(asked).toEqual([[V, late.sequenceNumber]]);
    expect(counter.counts()).toMatchObject({ SENT: 0, TIMED_OUT: 0, LATE_SUCCESS: 1 });
  });
});
