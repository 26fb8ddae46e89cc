import type { BookingStatus } from '../actors/contract/views.js';
import type { EventCursor } from '../api/event-cursor.js';
import type { BookingPage, BookingSummaryView, CustomerBookingsPort, EventPage, EventsPort, PublicEvent, TracesPort, TraceView, VehicleCommandsPort, VehicleCommandView } from '../api/ports.js';
import type { BookingPosition, CustomerBookingRow, CustomerBookingsQuery } from '../persistence/customer-bookings.js';
import { shardOfBooking, shardOfVehicle } from '../runtime/kernel/placement.js';
import type { TraceJournal, TraceJournalQuery } from '../actors/contract/trace-views.js';
import type { FleetShardCaller } from './shard-calls.js';
import { refuseUnavailable } from './fleet-service.js';
import type { ShardLinks } from './fleet-service.js';
import type { CommandRecord } from '../actors/vehicle/command-history.js';

/** A read waits this long for a shard; a shard that is down fails it at once. */
const READ_DEADLINE_MS = 15_000;

/**
 * GET /events across the shards. Each shard's events come in its journal order (so per key in
 * order: a key lives on one shard); the shards are interleaved by time with a k-way merge that only
 * ever takes a shard's next event, never reorders one shard's. The cursor holds one position per
 * shard, so a page boundary loses and repeats nothing.
 */
export class ShardedEvents implements EventsPort {
  private readonly listeners = new Set<(events: readonly PublicEvent[]) => void>();
  private readonly resyncs = new Set<() => void>();
  private readonly unsubscribes: Array<() => void>;

  constructor(private readonly shardLinks: ShardLinks) {
    this.unsubscribes = this.links().flatMap((link) => [
      link.onEvents((events) => this.publish(events)),
      // A restarted shard committed on start-up (timers due while it was down) before anyone followed it.
      link.onUp(() => {
        for (const resync of this.resyncs) resync();
      }),
    ]);
  }

  get shards(): number {
    return this.shardLinks.count;
  }

  async read(cursor: EventCursor, limit: number): Promise<EventPage> {
    const scans = await Promise.all(
      this.links().map((link, shard) =>
        link.call({ op: 'read', read: { read: 'events', after: cursor[shard] ?? 0, limit } }, READ_DEADLINE_MS).catch(refuseUnavailable),
      ),
    );
    const pages = scans.map((scan) => scan.events);
    const heads = pages.map(() => 0);
    const items: PublicEvent[] = [];
    const next = [...cursor];
    while (items.length < limit) {
      let pick = -1;
      for (let shard = 0; shard < pages.length; shard += 1) {
        const candidate = pages[shard]![heads[shard]!];
        if (!candidate) continue;
        const best = pick < 0 ? undefined : pages[pick]![heads[pick]!]!;
        if (!best || candidate.time < best.time) pick = shard;
      }
      if (pick < 0) break;
      const event = pages[pick]![heads[pick]!]!;
      heads[pick]! += 1;
      next[pick] = event.position;
      items.push(event);
    }
    // A shard whose page was taken whole is read up to where it scanned, past rows that were no event.
    for (const [shard, scan] of scans.entries()) {
      if (heads[shard] === scan.events.length) next[shard] = Math.max(next[shard] ?? 0, scan.scannedTo);
    }
    return { items, next };
  }

  subscribe(listener: (events: readonly PublicEvent[]) => void, resync?: () => void): () => void {
    this.listeners.add(listener);
    if (resync) this.resyncs.add(resync);
    // Shards push their commits only while someone follows (a booking benchmark pays nothing for it).
    if (this.listeners.size === 1) for (const link of this.links()) link.followEvents(true);
    return () => {
      this.listeners.delete(listener);
      if (resync) this.resyncs.delete(resync);
      if (this.listeners.size === 0) for (const link of this.links()) link.followEvents(false);
    };
  }

  close(): void {
    for (const unsubscribe of this.unsubscribes) unsubscribe();
  }

  private publish(events: readonly PublicEvent[]): void {
    for (const listener of this.listeners) listener(events);
  }

  private links(): FleetShardCaller[] {
    return Array.from({ length: this.shardLinks.count }, (_, shard) => this.shardLinks.link(shard));
  }
}

const TRACE_ID = /^[0-9a-f]{32}$/;
/** Traces followed per booking: creation, unlock, end, cancel, timers, retries. */
const TRACES_PER_BOOKING = 50;

/** GET /traces/:id — a booking's traces from its shard, or one trace id gathered from every shard. */
export class ShardedTraces implements TracesPort {
  constructor(private readonly shardLinks: ShardLinks) {}

  async find(bookingIdOrTraceId: string): Promise<TraceView | undefined> {
    if (TRACE_ID.test(bookingIdOrTraceId)) {
      const pages = await Promise.all(
        Array.from({ length: this.shardLinks.count }, (_, shard) =>
          this.shardLinks.link(shard).call({ op: 'read', read: { read: 'trace', traceId: bookingIdOrTraceId } }, READ_DEADLINE_MS).catch(refuseUnavailable),
        ),
      );
      const found = pages.filter((page) => page.length > 0);
      // One shard's steps are in delivery order already; only a trace that crossed shards is merged by time.
      const steps = found.length === 1 ? found[0]! : found.flat().sort((a, b) => Number(a.startedAt) - Number(b.startedAt));
      return steps.length > 0 ? { traceId: bookingIdOrTraceId, steps } : undefined;
    }
    const shard = shardOfBooking(bookingIdOrTraceId, this.shardLinks.count);
    if (shard === null) return undefined;
    const found = await this.shardLinks
      .link(shard)
      .call({ op: 'read', read: { read: 'booking-traces', bookingId: bookingIdOrTraceId, limit: TRACES_PER_BOOKING } }, READ_DEADLINE_MS).catch(refuseUnavailable);
    return found ? { traceId: found.traceIds[0]!, steps: found.steps } : undefined;
  }

  /** Asks every shard: an actor lives on one, so its events and sequence numbers come from that one (the others answer none, 0). */
  async journal(query: TraceJournalQuery): Promise<TraceJournal> {
    const answers = await Promise.all(
      Array.from({ length: this.shardLinks.count }, (_, shard) => this.shardLinks.link(shard).call({ op: 'read', read: { read: 'trace-journal', query } }, READ_DEADLINE_MS).catch(refuseUnavailable)),
    );
    return {
      events: answers.flatMap((answer) => answer.events),
      seqAt: query.points.map((_, index) => Math.max(0, ...answers.map((answer) => answer.seqAt[index] ?? 0))),
    };
  }
}

/** GET /vehicles/:id/commands — derived on the vehicle's own shard from its journal. */
export class ShardedVehicleCommands implements VehicleCommandsPort {
  constructor(private readonly shardLinks: ShardLinks) {}

  async recent(vehicleId: string, limit: number): Promise<VehicleCommandView[] | undefined> {
    const shard = shardOfVehicle(vehicleId, this.shardLinks.count);
    const records = await this.shardLinks.link(shard).call({ op: 'read', read: { read: 'vehicle-commands', vehicleId, limit } }, READ_DEADLINE_MS).catch(refuseUnavailable);
    return records?.map(toCommandView);
  }
}

const iso = (epochMs: number): string => new Date(epochMs).toISOString();

function toCommandView(record: CommandRecord): VehicleCommandView {
  const { commandId, command, state, bookingId, traceId, requestedAt, expiresAt, settledAt, roundTripMs, reason } = record;
  return { commandId, command, state, bookingId, traceId, requestedAt: iso(requestedAt), expiresAt: iso(expiresAt), settledAt: settledAt === null ? null : iso(settledAt), roundTripMs, reason };
}

/**
 * GET /bookings: a customer's bookings, newest first, from every shard's read model (a customer's
 * bookings live with their vehicles, on any shard). Each shard answers one more than the page; the
 * merge takes the newest `limit`, and the cursor is the last one's position (created_at, id), so the
 * next page starts strictly after it on every shard.
 */
export class ShardedCustomerBookings implements CustomerBookingsPort {
  constructor(private readonly shardLinks: ShardLinks) {}

  async list(customerId: string, options: { readonly status: BookingStatus | null; readonly limit: number; readonly cursor: string | null }): Promise<BookingPage | undefined> {
    const before = options.cursor === null ? null : decodeBookingCursor(options.cursor);
    if (before === undefined) return undefined;
    const query: CustomerBookingsQuery = { customerId, status: options.status, before, limit: options.limit + 1 };
    const pages = await Promise.all(
      Array.from({ length: this.shardLinks.count }, (_, shard) =>
        this.shardLinks.link(shard).call({ op: 'read', read: { read: 'customer-bookings', query } }, READ_DEADLINE_MS).catch(refuseUnavailable),
      ),
    );
    const newestFirst = pages.flat().sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const page = newestFirst.slice(0, options.limit);
    const last = page.at(-1);
    return {
      items: page.map(toSummaryView),
      next: newestFirst.length > options.limit && last ? encodeBookingCursor({ createdAt: last.createdAt, id: last.id }) : null,
    };
  }
}

const toSummaryView = (row: CustomerBookingRow): BookingSummaryView => ({
  id: row.id,
  vehicleId: row.vehicleId,
  status: row.status as BookingStatus,
  createdAt: new Date(row.createdAt).toISOString(),
  expiresAt: row.expiresAt === null ? null : new Date(row.expiresAt).toISOString(),
  updatedAt: new Date(row.updatedAt).toISOString(),
});

export function encodeBookingCursor(position: BookingPosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url');
}

/** undefined: not a cursor this server made. */
export function decodeBookingCursor(cursor: string): BookingPosition | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') return { createdAt: value[0] as number, id: value[1] };
  } catch {
    // not JSON: falls through
  }
  return undefined;
}
