import type { SqliteJournalEngine } from '../persistence/journal-engine.js';
import type { CustomerBookings } from '../persistence/customer-bookings.js';
import type { LiveBookingCounter } from '../persistence/live-bookings.js';
import type { GbfsVehicleReads } from '../persistence/gbfs-vehicles.js';
import type { AreaViolationReads } from '../persistence/area-violations.js';
import { gbfsVehicleChunk } from './gbfs/documents.js';
import type { Db } from '../persistence/sqlite.js';
import type { TraceJournalReads } from '../persistence/trace-journal.js';
import type { TraceStore } from '../persistence/trace-store.js';
import type { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import { PUBLIC_TAG } from '../runtime/kernel/journal.js';
import { waitsForCommits, type EventScan, type ReadAnswers, type ReadName, type ReadOf, type ShardRead } from './shard-calls.js';
import { bookingTraceSteps, toShardEvents, traceSteps, vehicleCommands } from './shard-reads.js';

/**
 * A shard's answers to the `read` call (server/shard-calls.ts, ShardRead): one handler per read,
 * each typed with its own answer, so the compiler holds every read to what its callers expect.
 */

/** What a shard reads from: its journal, read models and traces. */
export interface ShardReadSources {
  readonly shard: number;
  readonly db: Db;
  readonly journal: SqliteJournalEngine;
  readonly vehicles: VehicleReadModel;
  readonly traces: TraceStore;
  readonly traceJournal: TraceJournalReads;
  readonly liveBookings: LiveBookingCounter;
  readonly gbfsVehicles: GbfsVehicleReads;
  readonly customerBookings: CustomerBookings;
  readonly areaViolations: AreaViolationReads;
}

type ReadRequests = { readonly [Name in ReadName]: ReadOf<Name> };

export type ReadHandlers = { readonly [Name in ReadName]: (read: ReadRequests[Name]) => ReadAnswers[Name] | Promise<ReadAnswers[Name]> };

export function shardReadHandlers({ shard, db, journal, vehicles, traces, traceJournal, liveBookings, customerBookings, gbfsVehicles, areaViolations }: ShardReadSources): ReadHandlers {
  return {
    vehicle: (read) => vehicles.get(read.id, read.visibleTo) ?? null,
    vehicles: (read) => vehicles.list(read.filter),
    events: (read) => {
      const scan = (): EventScan => {
        const rows = journal.readAfter(read.after, read.limit, PUBLIC_TAG);
        // `scannedTo`: rows that are not events (a type no longer in the catalog) still move the cursor.
        return { events: toShardEvents(shard, rows), scannedTo: rows.at(-1)?.position ?? read.after };
      };
      const page = scan();
      if (page.events.length > 0 || !waitsForCommits(read)) return page;
      return nextCommitted(journal, scan, Math.min(read.waitMs ?? 0, MAX_EVENTS_WAIT_MS));
    },
    trace: (read) => traceSteps(traces, read.traceId),
    'booking-traces': (read) => bookingTraceSteps(traces, read.bookingId, read.limit),
    'vehicle-commands': (read) => vehicleCommands(db, read.vehicleId, read.limit, Date.now()),
    'trace-journal': (read) => traceJournal.read(read.query),
    'live-bookings': (read) => liveBookings.liveBookings(read.customerId, read.exceptBookingId),
    'gbfs-vehicles': (read) => gbfsVehicleChunk(gbfsVehicles.read(read.afterId, read.limit)),
    'customer-bookings': (read) => customerBookings.page(read.query),
    'area-violations': (read) => areaViolations.list(read.query),
  };
}

/** The longest an `events` read waits for a commit (a caller's larger `waitMs` is cut to it). */
const MAX_EVENTS_WAIT_MS = 30_000;

/** The page once a commit brings something after the cursor, or the empty page after `waitMs`. */
function nextCommitted(journal: SqliteJournalEngine, scan: () => EventScan, waitMs: number): Promise<EventScan> {
  return new Promise((resolve, reject) => {
    const answer = (): void => {
      clearTimeout(timer);
      stop();
      try {
        resolve(scan());
      } catch (error) {
        // The shard stopped meanwhile (its database closed): the caller hears it, and asks again.
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    // A shard that stops meanwhile is not held up by it (its caller asks again).
    const timer = setTimeout(answer, waitMs).unref();
    // Any commit: its rows may be no public event, and the scan then answers what moved the cursor, if anything.
    const stop = journal.onCommit(() => {
      const page = scan();
      if (page.events.length === 0) return;
      clearTimeout(timer);
      stop();
      resolve(page);
    });
  });
}

/** Hands a read to its handler. */
export const dispatchRead = (handlers: ReadHandlers, read: ShardRead): ReadAnswers[ReadName] | Promise<ReadAnswers[ReadName]> => readWith(handlers, read.read, read);

// `name` and `read` apart, so that TypeScript sees that the handler and the read belong together.
function readWith<Name extends ReadName>(handlers: ReadHandlers, name: Name, read: ReadRequests[Name]): ReadAnswers[Name] | Promise<ReadAnswers[Name]> {
  return handlers[name](read);
}
