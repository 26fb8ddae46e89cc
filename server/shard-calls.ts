import type { PublicEvent } from '../api/ports.js';
import type { Outcome } from '../actors/contract/rejections.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';
import type { GbfsVehicleChunk } from './gbfs/documents.js';
import type { TraceJournal, TraceJournalQuery } from '../actors/contract/trace-views.js';
import type { VehicleFilter, VehicleView } from '../actors/contract/views.js';
import type { CustomerBookingRow, CustomerBookingsQuery } from '../persistence/customer-bookings.js';
import type { AreaViolationQuery, AreaViolationRow, ViolationCounts } from '../persistence/area-violations.js';
import type { ActorAddress, Message } from '../runtime/kernel/directory.js';
import type { CommandRecord, CommandState } from '../actors/vehicle/command-history.js';
import type { TraceContext } from '../runtime/ground/trace-context.js';
import type { ShardLink } from '../runtime/kernel/shard-link.js';
import type { AnswerOf, CallOf } from '../runtime/kernel/shard-protocol.js';
import type { StoredTraceStep } from '../runtime/kernel/trace-step.js';

/**
 * The fleet's calls to a shard and what a shard reports (the kernel's shard protocol carries them as
 * plain data: runtime/kernel/shard-protocol.ts). Structured-clone-able only: no closures, no class
 * identity, rejections as values.
 */

/**
 * The fleet's calls and their answers, one exchange each (the kernel's `ShardExchange`,
 * runtime/kernel/shard-protocol.ts): `link.call({ op: 'read', read: { read: 'events', after, limit } })` answers an
 * `EventScan` with no cast, and the shard's dispatch (server/shard-call-dispatch.ts,
 * server/shard-read-dispatch.ts) must answer each call with its type.
 */
export type FleetExchange =
  /** Deliver a command to one actor of the shard and wait for its reply: an Outcome (a rejection when it did not answer). */
  | { readonly call: AskCall; readonly answer: Outcome<unknown> }
  /** A read of the shard's read models, events or traces. */
  | ReadExchange
  /** Demo vehicles to register in bulk (FLEET_SEED). */
  | { readonly call: { readonly op: 'seed'; readonly vehicles: readonly SeedVehicle[] }; readonly answer: { readonly registered: number } }
  | { readonly call: { readonly op: 'stats' }; readonly answer: ShardStats }
  /** The operating area replaced by an operator (PUT /operating-area; already saved to its file); null: none. */
  | { readonly call: { readonly op: 'operating-area'; readonly area: OperatingArea | null }; readonly answer: null }
  /** Stop accepting, finish what is queued, flush the journal, close. Answered once done. */
  | { readonly call: { readonly op: 'stop' }; readonly answer: null };

/** A request to a shard. `op` names it; its answer is `ShardAnswer<call>`. */
export type ShardCall = CallOf<FleetExchange>;

/** What `call` answers. */
export type ShardAnswer<Call extends ShardCall> = AnswerOf<FleetExchange, Call>;

/** The call that reads `R`, and its answer (for a caller generic in the read). */
export type ReadCall<R extends ShardRead> = R extends ShardRead ? { readonly op: 'read'; readonly read: R } : never;
export type ReadAnswer<R extends ShardRead> = ShardAnswer<ReadCall<R>>;

/** The call for `read`. (TypeScript cannot see that the object is the distributive ReadCall<R> while R is open.) */
export const readCall = <R extends ShardRead>(read: R): ReadCall<R> => ({ op: 'read', read }) as ReadCall<R>;

export interface AskCall {
  readonly op: 'ask';
  readonly target: ActorAddress;
  readonly message: Message;
  readonly from: string;
  readonly trace: TraceContext;
  readonly timeoutMs?: number;
}

export type ShardRead =
  /** `visibleTo`: a customer, who sees only bookable vehicles and their own ride (VehicleFilter). */
  | { readonly read: 'vehicle'; readonly id: string; readonly visibleTo?: string }
  | { readonly read: 'vehicles'; readonly filter: VehicleFilter }
  /**
   * `waitMs`: when nothing is there after `after`, answer as soon as something commits, or with the
   * empty page after `waitMs` (a long poll: how another node follows this shard's live events).
   */
  | { readonly read: 'events'; readonly after: number; readonly limit: number; readonly waitMs?: number }
  | { readonly read: 'trace'; readonly traceId: string }
  | { readonly read: 'booking-traces'; readonly bookingId: string; readonly limit: number }
  /** A vehicle's recent device commands, newest first (actors/vehicle/command-history.ts); null when it has no journal. */
  | { readonly read: 'vehicle-commands'; readonly vehicleId: string; readonly limit: number }
  /** The journal events of traced steps and the actors' sequence numbers at given times (the trace viewer). */
  | { readonly read: 'trace-journal'; readonly query: TraceJournalQuery }
  /** A customer's bookings that are not finished, but for one (persistence/live-bookings.ts). */
  | { readonly read: 'live-bookings'; readonly customerId: string; readonly exceptBookingId: string }
  /** A page of a customer's bookings on this shard, newest first (persistence/customer-bookings.ts). */
  | { readonly read: 'customer-bookings'; readonly query: CustomerBookingsQuery }

  /** The shard's operating-area violations during rides, newest first (persistence/area-violations.ts). */
  | { readonly read: 'area-violations'; readonly query: AreaViolationQuery }
  /** A page of the shard's vehicles for GBFS vehicle_status.json as JSON, after a public id, '' for the first (server/gbfs/documents.ts `gbfsVehicleChunk`). */
  | { readonly read: 'gbfs-vehicles'; readonly afterId: string; readonly limit: number };

export type ReadName = ShardRead['read'];

/**
 * An `events` read that waits for a commit (a long poll, server/cluster/remote-events.ts): held at its
 * shard (server/shard-read-dispatch.ts), and answered at once by a node that stops
 * (server/cluster/node-channel-server.ts). Also asked of a peer's body before it is checked.
 */
export const waitsForCommits = (read: ShardRead | undefined): boolean => read?.read === 'events' && typeof read.waitMs === 'number' && read.waitMs > 0;

/** The read named `Name`. */
export type ReadOf<Name extends ReadName> = Extract<ShardRead, { readonly read: Name }>;

/** What each read answers. */
export interface ReadAnswers {
  readonly vehicle: VehicleView | null;
  readonly vehicles: VehicleView[];
  readonly events: EventScan;
  readonly trace: StoredTraceStep[];
  /** Null when no trace touched the booking. */
  readonly 'booking-traces': { traceIds: string[]; steps: StoredTraceStep[] } | null;
  readonly 'vehicle-commands': CommandRecord[] | null;
  readonly 'trace-journal': TraceJournal;
  /** The ids of the customer's live bookings on this shard (the 409 active-booking-limit names them). */
  readonly 'live-bookings': string[];
  readonly 'customer-bookings': CustomerBookingRow[];
  readonly 'gbfs-vehicles': GbfsVehicleChunk;
  readonly 'area-violations': AreaViolationRow[];
}

/** A page of a shard's public events. `scannedTo`: rows that are not events (a type no longer in the catalog) still move the cursor. */
export interface EventScan {
  readonly events: ShardEvent[];
  readonly scannedTo: number;
}

/** One exchange per read, so that each read's answer is its own. */
type ReadExchange = { [Name in ReadName]: { readonly call: { readonly op: 'read'; readonly read: ReadOf<Name> }; readonly answer: ReadAnswers[Name] } }[ReadName];

export interface SeedVehicle {
  readonly id: string;
  readonly vehicleType: string;
  readonly model: string;
  readonly location: { readonly lat: number; readonly lon: number };
}

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
  /** Device commands by the states they reached since the shard started (actors/vehicle/command-history.ts). */
  readonly commands: Readonly<Record<CommandState, number>>;
  /** Rides still ACTIVE more than OVERDUE_RIDE_AFTER_MS past their booked end (persistence/overdue-rides.ts). */
  readonly overdueRides: number;
  /** Operating-area violations recorded during rides since the shard started, by kind (persistence/area-violations.ts). */
  readonly areaViolations: ViolationCounts;
  /**
   * Cluster mode: the shard's journal of record in Kafka (docs/cluster.md): the offset this shard's file
   * applied up to, the transactions this owner committed and their total time, how long the restore took.
   */
  readonly journalOfRecord: { readonly offset: number; readonly transactions: number; readonly commitMsTotal: number; readonly restoreMs: number } | null;
}

/** The main thread's end of one of the fleet's shards. */
export type FleetShardLink = ShardLink<FleetExchange, ShardStats, ShardEvent>;

/**
 * What the router needs of a shard's link: a worker's own link here, or, in cluster mode, a link to
 * the node that owns the shard (server/cluster/remote-shard-link.ts) carrying the same calls.
 */
export type FleetShardCaller = Pick<FleetShardLink, 'shard' | 'call' | 'onEvents' | 'onUp' | 'followEvents'>;
