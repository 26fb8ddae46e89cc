import type { BookingStatus } from '../contract/views.js';

/**
 * The one place that says which booking statuses are live, which are final and which are kept for
 * how long. The decider (`isFinal`), the live-booking count (persistence/live-bookings.ts) and the
 * purge of refused bookings (persistence/rejected-bookings.ts) all read it from here.
 */

/** A live booking holds its vehicle (REQUESTED too: a saga still running may have reserved it). */
export const LIVE_STATUSES = ['REQUESTED', 'VEHICLE_RESERVED', 'CONFIRMED', 'ACTIVE'] as const;
/** A final booking never changes status again (a late UNLOCKED may still make it lock its vehicle). */
export const FINAL_STATUSES = ['COMPLETED', 'CANCELLED', 'EXPIRED', 'REJECTED'] as const;

export type LiveStatus = (typeof LIVE_STATUSES)[number];
export type FinalStatus = (typeof FINAL_STATUSES)[number];

// Every status is live or final, never both: the build breaks when BookingStatus gains one that is neither.
type Missing = Exclude<BookingStatus, LiveStatus | FinalStatus>;
type Both = Extract<LiveStatus, FinalStatus>;
const _partition: [Missing, Both] extends [never, never] ? true : never = true;

/** NEW (nothing requested yet) is neither live nor final. */
export const isFinal = (status: BookingStatus | 'NEW'): status is FinalStatus => (FINAL_STATUSES as readonly string[]).includes(status);

/**
 * Retention: every booking's journal is kept for ever, except a REJECTED one with nothing left to
 * compensate: it is kept only while a retry with its Idempotency-Key can still ask for its answer
 * (the idempotency window), and only if it never reached its payment (persistence/rejected-bookings.ts
 * says why the payment's rows pin it).
 */
export const PURGEABLE_STATUS = 'REJECTED' satisfies FinalStatus;

/** `'A', 'B'` for an SQL `IN (…)` list: the statuses are constants of this file, never input. */
export const sqlStatusList = (statuses: readonly BookingStatus[]): string => statuses.map((status) => `'${status}'`).join(', ');
