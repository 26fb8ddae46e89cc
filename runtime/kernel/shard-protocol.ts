import type { PublicEvent } from '../../api/ports.js';
import type { TraceJournalQuery } from '../../persistence/trace-journal.js';
import type { ActorAddress, Message } from './directory.js';
import type { CommandState } from '../vehicle-commands.js';
import type { TraceContext } from './envelope.js';

/**
 * What crosses the boundary of a shard (docs/architecture.md, "Shards"): plain, structured-clone-able data
 * only, no closures, no class identity, rejections as values. Today it travels over a MessagePort
 * between the main thread and a worker (or a MessageChannel inside one thread, in tests); nothing in
 * it assumes shared memory, so the same messages could cross a socket to a shard in another process.
 */

/** A request to a shard. `op` names it; the answer's shape is `ShardAnswers[op]`. */
export type ShardCall =
  /** Deliver a command to one actor of the shard and wait for its reply (an Outcome). */
  | { readonly op: 'ask'; readonly target: ActorAddress; readonly message: Message; readonly from: string; readonly trace: TraceContext; readonly timeoutMs?: number }
  /** A read of the shard's read models, events or traces. */
  | { readonly op: 'read'; readonly read: ShardRead }
  /** Demo vehicles to register in bulk (FLEET_SEED). */
  | { readonly op: 'seed'; readonly vehicles: readonly SeedVehicle[] }
  | { readonly op: 'stats' }
  /** Stop accepting, finish what is queued, flush the journal, close. Answered once done. */
  | { readonly op: 'stop' };

export type ShardRead =
  | { readonly read: 'vehicle'; readonly id: string }
  | { readonly read: 'vehicles'; readonly filter: Readonly<Record<string, unknown>> }
  | { readonly read: 'events'; readonly after: number; readonly limit: number }
  | { readonly read: 'trace'; readonly traceId: string }
  | { readonly read: 'booking-traces'; readonly bookingId: string; readonly limit: number }
  /** A vehicle's recent device commands, newest first (runtime/vehicle-commands.ts); null when it has no journal. */
  | { readonly read: 'vehicle-commands'; readonly vehicleId: string; readonly limit: number }
  /** The journal events of traced steps and the actors' sequence numbers at given times (the trace viewer). */
  | { readonly read: 'trace-journal'; readonly query: TraceJournalQuery }
  /** A customer's bookings that are not finished, but for one (runtime/live-bookings.ts). */
  | { readonly read: 'live-bookings'; readonly customerId: string; readonly exceptBookingId: string };

export interface SeedVehicle {
  readonly id: string;
  readonly vehicleType: string;
  readonly model: string;
  readonly location: { readonly lat: number; readonly lon: number };
}

/** Main thread → shard. */
export type ToShard =
  | { readonly t: 'call'; readonly id: number; readonly call: ShardCall }
  /** Start or stop pushing public events as they commit (only while someone follows GET /events live). */
  | { readonly t: 'follow-events'; readonly on: boolean };

/** Shard → main thread. */
export type FromShard =
  | { readonly t: 'ready'; readonly stats: ShardStats }
  /** Start-up failed: the shard will not serve (the message says why). */
  | { readonly t: 'failed'; readonly error: string }
  /** `ok: false` only for a failure outside the domain (a bug, a closed journal): rejections are values in `value`. */
  | { readonly t: 'result'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'result'; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly t: 'events'; readonly events: readonly ShardEvent[] }
  | { readonly t: 'stats'; readonly stats: ShardStats };

/** One public journal event of a shard, shaped like its Kafka record (the API's PublicEvent, shard included). */
export type ShardEvent = PublicEvent;

/** A shard's vital signs, pushed every second and answered to `stats`: /health and /metrics read them. */
export interface ShardStats {
  readonly shard: number;
  readonly actors: { readonly active: number; readonly byKind: Readonly<Record<string, number>>; readonly activations: number; readonly passivations: number; readonly mailboxDepth: number };
  readonly journal: { readonly commits: number; readonly rows: number; readonly position: number };
  readonly mqtt: { readonly connected: boolean; readonly reconnects: number; readonly subscriptions: number; readonly url: string };
  readonly telemetry: Readonly<Record<string, number>>;
  readonly timers: { readonly woken: number };
  /** Null when no Kafka is configured. */
  readonly relay: {
    readonly lag: number;
    readonly published: number;
    readonly failures: number;
    readonly connected: boolean;
    readonly lastError: string | null;
  } | null;
  readonly memory: { readonly heapUsedBytes: number };
  /** Device commands by the states they reached since the shard started (runtime/vehicle-commands.ts). */
  readonly commands: Readonly<Record<CommandState, number>>;
}

/** The two ends of a MessagePort, a Worker or a worker's parentPort: all the shard boundary needs. */
export interface ShardPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}
