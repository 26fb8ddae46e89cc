import type { BookingStatus } from '../actors/contract/views.js';
import type { TraceJournal, TraceJournalQuery } from '../actors/contract/trace-views.js';
import type { EventCursor } from './event-cursor.js';
import type { TraceContext } from '../runtime/ground/trace-context.js';

/**
 * What the HTTP layer needs besides FleetService (actors/contract/views.ts). Each is a small interface so
 * `buildApp(deps)` runs in tests on in-memory fakes; server/fleet-app.ts wires the real implementations.
 */

/** One stored response to an idempotent request (status and body, errors included). */
export interface StoredResponse {
  readonly requestHash: string;
  /** Null: claimed by a request that has no final answer (yet). */
  readonly statusCode: number | null;
  readonly body: unknown;
  /** With no final answer: a request with this claim runs now (409). Absent or false: it ended without one, and runs again. */
  readonly running?: boolean;
}

/**
 * Responses to `POST /bookings` with an `Idempotency-Key`, scoped per customer, kept 24 h. Asynchronous:
 * the claims live in the shards' journals (server/idempotency-claims.ts), never on the main thread's disk.
 * A store that cannot answer throws an error carrying its rejection (503), as every port does.
 */
/** `trace`: the request's trace, so that a keyed request's claim steps are in its trace (none: a trace of their own). */
export interface IdempotencyPort {
  /**
   * Records the key's request hash before the request runs, unless the key holds something else, which
   * is answered instead: another body's claim (refused even before the first answered), a stored answer,
   * or a request with this body still running (`statusCode` null), on this process or another. Undefined:
   * claimed for this request, which runs.
   */
  claim(customerId: string, key: string, requestHash: string, trace?: TraceContext): Promise<StoredResponse | undefined>;
  save(customerId: string, key: string, requestHash: string, statusCode: number, body: unknown, trace?: TraceContext): Promise<void>;
  /** The request's answer was not final: the claim no longer counts as running, so a retry runs at once. */
  release(customerId: string, key: string, requestHash: string, trace?: TraceContext): Promise<void>;
}

export interface HealthCheck {
  readonly ok: boolean;
  /** Why it is not ok, or a useful fact (`3 vehicles online`); never a secret. */
  readonly detail?: string;
}

/** Every dependency that must work for the service to serve requests. Any `ok: false` → 503. */
export interface HealthReport {
  readonly checks: Readonly<Record<string, HealthCheck>>;
}

/** One public event as GET /events shows it (the same event Kafka receives). */
export interface PublicEvent {
  /** The shard whose journal holds it (every event of one key is on one shard). */
  readonly shard: number;
  /** Position in that shard's journal. */
  readonly position: number;
  /** Kafka topic name, e.g. `booking.created`. */
  readonly type: string;
  /** The aggregate id (Kafka record key). */
  readonly key: string;
  readonly data: unknown;
  /** ISO 8601. */
  readonly time: string;
  /** Unique and stable (CloudEvents `ce_id`): consumers de-duplicate on it. */
  readonly id: string;
}

/** A page of public events and the cursor after it (api/event-cursor.ts). */
export interface EventPage {
  readonly items: readonly PublicEvent[];
  readonly next: EventCursor;
}

/**
 * Public events of every shard: each shard's in its journal order (so per key in order), the shards
 * interleaved by time. A cursor holds one position per shard, so paging has no gap and no duplicate.
 */
export interface EventsPort {
  readonly shards: number;
  /** Events after `cursor`, at most `limit`. */
  read(cursor: EventCursor, limit: number): Promise<EventPage>;
  /**
   * Called with every newly committed batch of one shard's public events, in order; `resync` when live
   * events may have been missed (a shard restarted), so the subscriber reads from its cursor again.
   * Returns an unsubscribe function.
   */
  subscribe(listener: (events: readonly PublicEvent[]) => void, resync?: () => void): () => void;
}

/** One recorded delivery of a message between actors (docs/architecture.md, "Messages and traces"). */
export type TraceStep = Readonly<Record<string, unknown>>;

export interface TraceView {
  readonly traceId: string;
  readonly steps: readonly TraceStep[];
}

export interface TracesPort {
  /** A booking id (its creation trace and the ones that followed) or a 32-hex trace id. */
  find(bookingIdOrTraceId: string): Promise<TraceView | undefined>;
  /** The journal events the traces' steps persisted, and sequence numbers at given times (the trace viewer; api/viewer/). */
  journal?(query: TraceJournalQuery): Promise<TraceJournal>;
}

/** One device command of a vehicle as GET /vehicles/:id/commands shows it (actors/vehicle/command-history.ts says what each state means). */
export interface VehicleCommandView {
  readonly commandId: string;
  readonly command: 'UNLOCK' | 'LOCK';
  readonly state: 'SENT' | 'SUCCEEDED' | 'REJECTED' | 'TIMED_OUT' | 'EXPIRED' | 'LATE_SUCCESS';
  readonly bookingId: string;
  /** The trace of the request that sent it (GET /traces/:traceId), when recorded. */
  readonly traceId: string | null;
  /** ISO 8601. */
  readonly requestedAt: string;
  readonly expiresAt: string;
  /** When it reached its state; null while SENT. */
  readonly settledAt: string | null;
  readonly roundTripMs: number | null;
  readonly reason: string | null;
}

/** One booking in a customer's list (GET /bookings): the read model's row; GET /bookings/:id has the rest. */
export interface BookingSummaryView {
  readonly id: string;
  readonly vehicleId: string;
  readonly status: BookingStatus;
  /** ISO 8601. */
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly updatedAt: string;
}

/** A page of a customer's bookings, newest first; `next` continues it (null: the last page). */
export interface BookingPage {
  readonly items: BookingSummaryView[];
  readonly next: string | null;
}

export interface CustomerBookingsPort {
  /** `cursor`: a previous page's `next` (opaque); undefined when it is not one. */
  list(customerId: string, options: { readonly status: BookingStatus | null; readonly limit: number; readonly cursor: string | null }): Promise<BookingPage | undefined>;
}

export interface VehicleCommandsPort {
  /** The vehicle's recent commands, newest first; undefined when the vehicle has no journal (no such vehicle). */
  recent(vehicleId: string, limit: number): Promise<VehicleCommandView[] | undefined>;
}

/** One GBFS feed ready to send (server/gbfs/feeds.ts builds them; docs/gbfs.md). */
export interface GbfsFeed {
  /** The whole JSON document, encoded once (not per response). */
  readonly body: Buffer;
  /** The same, gzip-compressed once per snapshot (for `Accept-Encoding: gzip`); null when not worth it. */
  readonly gzipped: Buffer | null;
  /** A strong validator over the feed's data: unchanged data keeps its ETag (and its last_updated) across rebuilds. */
  readonly etag: string;
  /** The feed's `last_updated`, epoch ms (whole seconds). */
  readonly lastModified: number;
  readonly ttlSeconds: number;
}

/** The public GBFS 3.0 feeds; `name` is the file name without `.json`. Null: no such feed. */
export interface GbfsPort {
  feed(name: string): Promise<GbfsFeed | null>;
}

/** The operating area's replacement (PUT /operating-area). */
export type AreaReplacement =
  /** `notReached`: nodes of a cluster that did not take it (down): they keep their area until the PUT is repeated. */
  | { readonly ok: true; readonly zones: number; readonly notReached?: readonly string[] }
  | { readonly ok: false; readonly reason: 'invalid'; readonly errors: readonly string[] }
  /** FLEET_OPERATING_AREA is unset: there is no file to replace. */
  | { readonly ok: false; readonly reason: 'not-configured' };

export interface OperatingAreaPort {
  replace(document: unknown): Promise<AreaReplacement>;
  /** Operating-area violations during rides from every shard, newest first (docs/gbfs.md, "During a ride"). */
  violations(filter: AreaViolationFilter): Promise<AreaViolationView[]>;
}

export interface AreaViolationFilter {
  readonly limit: number;
  /** Epoch ms; null: from the beginning. */
  readonly since: number | null;
  readonly vehicleId: string | null;
  readonly bookingId: string | null;
}

export interface AreaViolationView {
  readonly id: string;
  readonly kind: 'ride-through-not-allowed' | 'speed-limit-exceeded';
  readonly vehicleId: string;
  readonly vehicleType: string;
  readonly bookingId: string | null;
  readonly zone: string;
  readonly limitKph: number | null;
  readonly location: { readonly lat: number; readonly lon: number };
  readonly maxSpeedKmh: number;
  readonly readings: number;
  readonly startedAt: string;
  readonly lastAt: string;
}
