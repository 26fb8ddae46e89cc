import type { DeviceCommandType } from '../contract/device-protocol.js';
import type { VehicleEvent } from './decider.js';

/**
 * A vehicle's device commands as an IoT platform shows them, derived from the vehicle's journal
 * (actors/vehicle/decider.ts): UnlockRequested / LockRequested open a command, the device's answer,
 * a timeout or a release closes it. Pure: journal entries in, command records out. Serves
 * GET /vehicles/:id/commands and the shard's `fleet_vehicle_commands_total`.
 *
 * - SENT: issued, no outcome yet.
 * - SUCCEEDED: the device confirmed it (UNLOCKED / LOCKED) before its deadline.
 * - REJECTED: the device answered REJECTED.
 * - TIMED_OUT: no answer by its deadline (UNLOCK_TIMEOUT_MS).
 * - EXPIRED: abandoned before its deadline without an answer: the vehicle went offline (the broker
 *   drops the command at its `expiresAt`), or its booking released the vehicle while it waited; also,
 *   at read time, a command still SENT after its `expiresAt` whose timeout was never journaled (the
 *   server stopped before its deadline fired and the vehicle has not been woken since).
 * - LATE_SUCCESS: confirmed after it had TIMED_OUT or EXPIRED: the car did open (or lock), late.
 */

export const COMMAND_STATES = ['SENT', 'SUCCEEDED', 'REJECTED', 'TIMED_OUT', 'EXPIRED', 'LATE_SUCCESS'] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

export interface CommandRecord {
  readonly commandId: string;
  readonly vehicleId: string;
  readonly command: DeviceCommandType;
  readonly state: CommandState;
  /** Who asked: the booking the command was for, and the trace of the request that sent it. */
  readonly bookingId: string;
  readonly traceId: string | null;
  /** Journal commit time of the request, epoch ms (durable before it went out). */
  readonly requestedAt: number;
  readonly expiresAt: number;
  /** When it reached its state (answer, deadline, release), epoch ms; null while SENT. */
  readonly settledAt: number | null;
  /** Request commit → answer commit, on the server's clock; null without a device answer. */
  readonly roundTripMs: number | null;
  /** `timeout`, `offline`, `released`, `no outcome journaled`, or the device's rejection reason. */
  readonly reason: string | null;
}

/** One event of a vehicle's journal (persistence/actor-journal.ts ActorJournalEntry fits). */
export interface CommandJournalEntry {
  readonly sequenceNumber: number;
  readonly createdAt: number;
  readonly traceId: string | null;
  readonly data: unknown;
}

/** The vehicle event types that open or close a command: the rest never change one. */
export const COMMAND_EVENT_TYPES: ReadonlySet<string> = new Set<VehicleEvent['type']>([
  'UnlockRequested',
  'LockRequested',
  'VehicleUnlocked',
  'VehicleLocked',
  'VehicleSecured',
  'UnlockTimedOut',
  'LockTimedOut',
  'DeviceRejectedCommand',
  'VehicleReleased',
]);

/** Commands by id; `applyCommandEvent` updates it in place. */
export type CommandBook = Map<string, CommandRecord>;

/**
 * Applies one vehicle event to the commands it concerns and returns the records it changed (new
 * state), so that a caller can count transitions. Events for commands not in `book` change nothing.
 */
export function applyCommandEvent(book: CommandBook, entry: CommandJournalEntry): CommandRecord[] {
  const event = entry.data as VehicleEvent;
  const at = entry.createdAt;
  const settle = (commandId: string, change: (record: CommandRecord) => CommandRecord | null): CommandRecord[] => {
    const record = book.get(commandId);
    const next = record ? change(record) : null;
    if (!next) return [];
    book.set(commandId, next);
    return [next];
  };
  switch (event.type) {
    case 'UnlockRequested':
    case 'LockRequested': {
      const record: CommandRecord = {
        commandId: event.commandId,
        vehicleId: event.vehicleId,
        command: event.type === 'UnlockRequested' ? 'UNLOCK' : 'LOCK',
        state: 'SENT',
        bookingId: event.bookingId,
        traceId: entry.traceId,
        requestedAt: at,
        expiresAt: event.expiresAt,
        settledAt: null,
        roundTripMs: null,
        reason: null,
      };
      book.set(record.commandId, record);
      return [record];
    }
    case 'VehicleUnlocked':
    case 'VehicleLocked':
    case 'VehicleSecured':
      return settle(event.commandId, (record) => {
        if (record.state === 'SENT') return { ...record, state: 'SUCCEEDED', settledAt: at, roundTripMs: at - record.requestedAt };
        if (record.state === 'TIMED_OUT' || record.state === 'EXPIRED') return { ...record, state: 'LATE_SUCCESS', settledAt: at, roundTripMs: at - record.requestedAt };
        return null;
      });
    case 'DeviceRejectedCommand':
      return settle(event.commandId, (record) =>
        record.state === 'SENT' ? { ...record, state: 'REJECTED', settledAt: at, roundTripMs: at - record.requestedAt, reason: event.reason } : null,
      );
    case 'UnlockTimedOut':
    case 'LockTimedOut':
      return settle(event.commandId, (record) =>
        record.state === 'SENT' ? { ...record, state: event.reason === 'offline' ? 'EXPIRED' : 'TIMED_OUT', settledAt: at, reason: event.reason } : null,
      );
    case 'VehicleReleased': {
      const changed: CommandRecord[] = [];
      for (const record of book.values()) {
        if (record.state !== 'SENT' || record.vehicleId !== event.vehicleId || record.bookingId !== event.bookingId) continue;
        const next: CommandRecord = { ...record, state: 'EXPIRED', settledAt: at, reason: 'released' };
        book.set(record.commandId, next);
        changed.push(next);
      }
      return changed;
    }
    default:
      return [];
  }
}

/** A SENT command's deadline fires and journals its timeout within milliseconds; past this, none is coming. */
const UNJOURNALED_GRACE_MS = 1000;

/**
 * The commands of one vehicle's journal `entries` (oldest first), newest first, at most `limit`.
 * Commands whose request lies before the first entry are not shown (their answers change nothing).
 */
export function commandHistory(entries: readonly CommandJournalEntry[], now: number, limit: number): CommandRecord[] {
  const book: CommandBook = new Map();
  for (const entry of entries) applyCommandEvent(book, entry);
  return [...book.values()]
    .reverse()
    .slice(0, limit)
    .map((record) =>
      record.state === 'SENT' && now > record.expiresAt + UNJOURNALED_GRACE_MS ? { ...record, state: 'EXPIRED', settledAt: record.expiresAt, reason: 'no outcome journaled' } : record,
    );
}

/** Journal events to read for `limit` commands: a command and its outcome are two events, reserve and release two more per booking. */
export const eventsForCommands = (limit: number): number => limit * 4 + 8;

/** Failed commands remembered for a late answer (and SENT ones); past this, the journal is asked. */
const REMEMBERED = 10_000;

/**
 * Counts a shard's commands by the states they reach, from its journal commits: SENT for every
 * command issued, then each state a command moves into. A late success counts under TIMED_OUT (or
 * EXPIRED) when it failed and again under LATE_SUCCESS when the answer came.
 */
export class CommandOutcomeCounter {
  private readonly book: CommandBook = new Map();
  private readonly totals: Record<CommandState, number> = { SENT: 0, SUCCEEDED: 0, REJECTED: 0, TIMED_OUT: 0, EXPIRED: 0, LATE_SUCCESS: 0 };

  /** `history(vehicleId, beforeSeq)`: the vehicle's recent journal before an event, for an answer whose command this counter never saw (a restart since). */
  constructor(private readonly history: (vehicleId: string, beforeSeq: number) => readonly CommandJournalEntry[]) {}

  onEvent(entry: CommandJournalEntry): void {
    const event = entry.data as VehicleEvent;
    if (!COMMAND_EVENT_TYPES.has(event.type)) return;
    if ('commandId' in event && event.type !== 'UnlockRequested' && event.type !== 'LockRequested' && !this.book.has(event.commandId)) {
      for (const earlier of this.history(event.vehicleId, entry.sequenceNumber)) applyCommandEvent(this.book, earlier);
    }
    for (const record of applyCommandEvent(this.book, entry)) {
      this.totals[record.state] += 1;
      // Only a command that may still be answered needs remembering.
      if (record.state === 'SUCCEEDED' || record.state === 'REJECTED' || record.state === 'LATE_SUCCESS') this.book.delete(record.commandId);
    }
    // A Map iterates in insertion order: the oldest commands go first.
    for (const commandId of this.book.keys()) {
      if (this.book.size <= REMEMBERED) break;
      this.book.delete(commandId);
    }
  }

  counts(): Record<CommandState, number> {
    return { ...this.totals };
  }
}
