import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

export interface OverdueRide {
  readonly bookingId: string;
  readonly customerId: string;
  readonly vehicleId: string;
  /** Epoch ms: the unlock plus the booked minutes. */
  readonly dueBackAt: number;
}

/**
 * Rides far past their booked end (docs/contract.md, "Pricing"): still ACTIVE more than `afterMs`
 * after the unlock plus the booked minutes. Nothing ends a ride but its customer (the vehicle may be
 * miles away); the charge keeps running, and operators are told (a metric and one log line per ride)
 * so that someone calls the customer or goes to the vehicle.
 */
export class OverdueRides {
  private readonly query: Statement<[number], { id: string; customer_id: string; vehicle_id: string; due_back_at: number }>;
  private readonly flagged = new Set<string>();

  constructor(db: Db) {
    this.query = db.prepare(
      `SELECT id, customer_id, vehicle_id, due_back_at FROM bookings WHERE due_back_at IS NOT NULL AND due_back_at < ? AND status = 'ACTIVE' ORDER BY due_back_at LIMIT 1000`,
    );
  }

  /** The overdue rides now (at most 1000, the longest overdue first), and those not reported before. */
  check(nowMs: number, afterMs: number): { readonly count: number; readonly newlyOverdue: readonly OverdueRide[] } {
    const rides = this.query.all(nowMs - afterMs).map((row) => ({ bookingId: row.id, customerId: row.customer_id, vehicleId: row.vehicle_id, dueBackAt: row.due_back_at }));
    const current = new Set(rides.map((ride) => ride.bookingId));
    const newlyOverdue = rides.filter((ride) => !this.flagged.has(ride.bookingId));
    // Forget rides that ended, so the set stays as small as the overdue rides themselves.
    for (const id of this.flagged) if (!current.has(id)) this.flagged.delete(id);
    for (const ride of newlyOverdue) this.flagged.add(ride.bookingId);
    return { count: rides.length, newlyOverdue };
  }
}
