import type { Statement } from 'better-sqlite3';
import { BOOKING } from '../actors/booking/actor.js';
import { PURGEABLE_STATUS } from '../actors/booking/lifecycle.js';
import { authorizationIdFor, PAYMENT } from '../actors/payment/actor.js';
import { IDEMPOTENCY_TTL_MS } from './idempotency-store.js';
import type { Db } from './sqlite.js';
import { hourly } from '../runtime/ground/hourly.js';
import type { ActorAddress } from '../runtime/kernel/directory.js';
import type { Logger } from '../runtime/ground/logger.js';

/**
 * Refused bookings do not grow a shard's journal for ever. A booking the vehicle refused ends
 * REJECTED with its rows (BookingRequested, BookingRejected) kept only so that a retry with its
 * Idempotency-Key answers the same refusal. Once that key's stored response has expired
 * (IDEMPOTENCY_TTL_MS, 24 h) nothing can ask for them any more, and they are deleted: journal rows,
 * snapshot and read-model row. The vehicle's own history (reserved, released) stays: it is the
 * vehicle's state. A booking that got as far as its payment keeps its rows: the gateway remembers
 * the authorization id (`auth_<bookingId>`), so a booking made afresh under the same id would be
 * answered the old authorization (perhaps since voided) and ride on no hold. Those are bounded by the
 * per-customer limits instead.
 *
 * Refusals decided before the saga (MAX_ACTIVE_BOOKINGS_PER_CUSTOMER, validation, rate limits) never
 * reach the journal at all; this is for the ones only the vehicle or the gateway can decide.
 *
 * Safe because: a REJECTED booking publishes nothing (no public event: the relay's checkpoint never
 * needs its rows; a booking with a public row is skipped anyway); one still compensating (`wake_at`
 * set) is kept until it is done; and an actor still in memory is skipped, so no activation holds
 * sequence numbers for rows that are gone (after the purge the id starts afresh, as a new booking).
 */

/** Bookings deleted per transaction: a few milliseconds between two turns of the shard's event loop. */
const PURGE_CHUNK = 500;

export interface RejectedBookingPurge {
  /** Deletes up to `limit` rejected bookings last changed before `before` (epoch ms); returns how many. */
  purge(before: number, limit?: number): number;
}

export function rejectedBookingPurge(db: Db, isActive: (address: ActorAddress) => boolean): RejectedBookingPurge {
  const candidates: Statement<[number, number], { id: string }> = db.prepare(
    // Purgeable (actors/booking/lifecycle.ts) and compensated: no release or void left to retry.
    `SELECT id FROM bookings WHERE status = '${PURGEABLE_STATUS}' AND wake_at IS NULL AND updated_at < ? ORDER BY updated_at LIMIT ?`,
  );
  const hasPublicRow: Statement<[string, string], { n: number }> = db.prepare(
    'SELECT count(*) AS n FROM journal WHERE persistence_key IN (?, ?) AND is_public = 1',
  );
  const hasRows: Statement<[string], { n: number }> = db.prepare('SELECT count(*) AS n FROM journal WHERE persistence_key = ?');
  const deleteRows = db.prepare<[string, string]>('DELETE FROM journal WHERE persistence_key IN (?, ?)');
  const deleteSnapshots = db.prepare<[string, string]>('DELETE FROM snapshots WHERE persistence_key IN (?, ?)');
  const deleteBooking = db.prepare<[string]>('DELETE FROM bookings WHERE id = ?');

  const purgeOne = (bookingId: string): boolean => {
    const booking = { kind: BOOKING, id: bookingId };
    const payment = { kind: PAYMENT, id: authorizationIdFor(bookingId) };
    if (isActive(booking) || isActive(payment)) return false;
    const bookingKey = `${BOOKING}/${bookingId}`;
    const paymentKey = `${PAYMENT}/${payment.id}`;
    if ((hasPublicRow.get(bookingKey, paymentKey)?.n ?? 0) > 0) return false;
    if ((hasRows.get(paymentKey)?.n ?? 0) > 0) return false;
    deleteRows.run(bookingKey, paymentKey);
    deleteSnapshots.run(bookingKey, paymentKey);
    deleteBooking.run(bookingId);
    return true;
  };

  const purgeChunk = db.transaction((before: number, limit: number): number => {
    let purged = 0;
    for (const { id } of candidates.all(before, limit)) if (purgeOne(id)) purged += 1;
    return purged;
  });

  return { purge: (before, limit = PURGE_CHUNK) => purgeChunk(before, limit) };
}

/** Every hour, the shard's rejected bookings past the idempotency window, chunk by chunk. */
export function housekeepRejectedBookings(parts: { db: Db; isActive: (address: ActorAddress) => boolean; logger: Logger }): () => void {
  const purger = rejectedBookingPurge(parts.db, parts.isActive);
  return hourly(
    async (stopped) => {
      const before = Date.now() - IDEMPOTENCY_TTL_MS;
      let bookings = 0;
      // A chunk that purged fewer than it could has reached the end (or only active actors are left).
      for (let purged = PURGE_CHUNK; purged === PURGE_CHUNK && !stopped(); ) {
        purged = purger.purge(before, PURGE_CHUNK);
        bookings += purged;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (bookings > 0) parts.logger.info({ bookings }, 'housekeeping: rejected bookings past their idempotency window deleted from the journal');
    },
    parts.logger,
    'rejected-booking housekeeping',
  );
}
