import type { Statement } from 'better-sqlite3';
import { FINAL_STATUSES, sqlStatusList } from '../actors/booking/lifecycle.js';
import { NO_ANSWER, reject, type Outcome } from '../actors/contract/rejections.js';
import type { Db } from './sqlite.js';

/**
 * At most MAX_ACTIVE_BOOKINGS_PER_CUSTOMER live bookings per customer (docs/contract.md, "Limits").
 *
 * A booking lives on its vehicle's shard, so one customer's bookings are spread over the shards, and
 * no shard can decide alone. HTTP enters only through the main thread, so the rule is kept there:
 * one customer's booking requests run one after another (a promise chain per customer), and each
 * first counts the customer's live bookings on every shard (the `bookings` read model, written in the
 * same transaction as the events, so a confirmed booking is counted as soon as its 201 is sent).
 * Chosen over a claim row in the registry because a claim would have to be released by every way a
 * booking ends on its shard (cancel, end, expiry timer, rejection, restart recovery): the read model
 * already knows, and a second copy of it could only drift. The cost is one read per shard before each
 * booking, and a customer's concurrent bookings wait for each other (nobody else's do).
 */

/** Every booking not final is live (actors/booking/lifecycle.ts; also REQUESTED: a saga still running holds its vehicle). */
const LIVE_BOOKINGS_SQL = `SELECT id FROM bookings
  WHERE customer_id = ? AND id <> ? AND status NOT IN (${sqlStatusList(FINAL_STATUSES)})
  ORDER BY created_at DESC, id DESC LIMIT ?`;

/**
 * Ids named at most: enough to count up to any sensible MAX_ACTIVE_BOOKINGS_PER_CUSTOMER and to name the
 * bookings in the 409 (a customer who lost a booking id finds it there, or in GET /bookings).
 */
export const LIVE_BOOKING_IDS_NAMED = 100;

/** A shard's side: its own live bookings of a customer, newest first, from its read model (index bookings_customer). */
export class LiveBookingCounter {
  private readonly live: Statement<[string, string, number], { id: string }>;

  constructor(db: Db) {
    this.live = db.prepare(LIVE_BOOKINGS_SQL);
  }

  /** `exceptBookingId`: the booking being (re)requested, so that its own retry does not count against it. */
  liveBookings(customerId: string, exceptBookingId: string): string[] {
    return this.live.all(customerId, exceptBookingId, LIVE_BOOKING_IDS_NAMED).map((row) => row.id);
  }
}

/** The ids of a customer's live bookings on every shard; throws when a shard cannot answer. */
export type LiveBookingIds = (customerId: string, exceptBookingId: string) => Promise<readonly string[]>;

/** The main thread's side: one booking request per customer at a time, refused past the limit. */
export class LiveBookingLimit {
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Bookings whose turn ended without an answer (an ask timed out on a loaded shard): the
   * CreateBooking may still be queued there, with no row to count yet. Each counts as live until
   * `unsettledHoldMs` after its turn, by which time its saga has a row or never will (its
   * confirmation deadline passed). Counting it twice meanwhile only errs on the side of a 409.
   */
  private readonly unsettled = new Map<string, Map<string, number>>();

  /** `max` 0: no limit, and nothing is counted or queued. */
  constructor(
    private readonly max: number,
    private readonly liveIds: LiveBookingIds,
    private readonly unsettledHoldMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  private unsettledOf(customerId: string, exceptBookingId: string): string[] {
    const held = this.unsettled.get(customerId);
    if (!held) return [];
    const now = this.now();
    for (const [id, until] of held) if (until <= now) held.delete(id);
    if (held.size === 0) this.unsettled.delete(customerId);
    return [...held.keys()].filter((id) => id !== exceptBookingId);
  }

  /**
   * Runs `book` when the customer holds fewer than `max` live bookings besides `bookingId`; otherwise
   * answers ActiveBookingLimitReached without reaching the shard (nothing is journaled).
   */
  admit<T>(customerId: string, bookingId: string, book: () => Promise<Outcome<T>>): Promise<Outcome<T>> {
    if (this.max === 0) return book();
    const previous = this.queues.get(customerId) ?? Promise.resolve();
    const turn = previous.then(async (): Promise<Outcome<T>> => {
      const live = [...new Set([...(await this.liveIds(customerId, bookingId)), ...this.unsettledOf(customerId, bookingId)])];
      if (live.length >= this.max) return reject({ type: 'ActiveBookingLimitReached', customerId, limit: this.max, liveBookingIds: live });
      const outcome = await book();
      // No answer in time: the booking may still be made on its shard after this turn ended.
      if (!outcome.ok && NO_ANSWER.has(outcome.rejection.type)) {
        const held = this.unsettled.get(customerId) ?? new Map<string, number>();
        held.set(bookingId, this.now() + this.unsettledHoldMs);
        this.unsettled.set(customerId, held);
      }
      return outcome;
    });
    // The chain goes on after a failed turn; the failure itself is the caller's.
    const tail = turn.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(customerId, tail);
    void tail.then(() => {
      if (this.queues.get(customerId) === tail) this.queues.delete(customerId);
    });
    return turn;
  }

  /** Customers with a booking request running or waiting (tests; a leak would show here). */
  get busyCustomers(): number {
    return this.queues.size;
  }
}
