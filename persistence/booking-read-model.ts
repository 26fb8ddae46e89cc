import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

/**
 * The shard's `bookings` read model asked whether a booking exists: one indexed lookup, so a request
 * for an id nobody created is answered without activating (and keeping in memory) a booking actor.
 * The projector writes the row in the transaction of the booking's first event.
 */
export class BookingReadModel {
  private readonly known: Statement<[string], { found: number }>;

  constructor(db: Db) {
    this.known = db.prepare('SELECT 1 AS found FROM bookings WHERE id = ?');
  }

  exists(bookingId: string): boolean {
    return this.known.get(bookingId) !== undefined;
  }
}
