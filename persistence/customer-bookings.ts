import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

/**
 * One shard's part of GET /bookings: a customer's bookings from the `bookings` read model (index
 * bookings_customer), newest first, after a keyset position, optionally of one status. The main thread
 * merges the shards' pages (server/fleet-reads.ts): a position (created_at, id) is total, so a page
 * boundary loses and repeats nothing across shards.
 */
export interface CustomerBookingRow {
  readonly id: string;
  readonly vehicleId: string;
  readonly status: string;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly updatedAt: number;
}

/** Where a page starts: strictly older than this booking (the last one of the previous page). */
export interface BookingPosition {
  readonly createdAt: number;
  readonly id: string;
}

export interface CustomerBookingsQuery {
  readonly customerId: string;
  readonly status: string | null;
  readonly before: BookingPosition | null;
  readonly limit: number;
}

const SELECT = `SELECT id, vehicle_id AS vehicleId, status, created_at AS createdAt, expires_at AS expiresAt, updated_at AS updatedAt FROM bookings`;
const NEWEST_FIRST = 'ORDER BY created_at DESC, id DESC LIMIT @limit';
const BEFORE = '(created_at < @createdAt OR (created_at = @createdAt AND id < @id))';

type Params = { customerId: string; status?: string; createdAt?: number; id?: string; limit: number };

export class CustomerBookings {
  private readonly queries: Readonly<Record<'all' | 'status' | 'before' | 'statusBefore', Statement<[Params], CustomerBookingRow>>>;

  constructor(db: Db) {
    const query = (where: string) => db.prepare<[Params], CustomerBookingRow>(`${SELECT} WHERE customer_id = @customerId${where} ${NEWEST_FIRST}`);
    this.queries = {
      all: query(''),
      status: query(' AND status = @status'),
      before: query(` AND ${BEFORE}`),
      statusBefore: query(` AND status = @status AND ${BEFORE}`),
    };
  }

  page(query: CustomerBookingsQuery): CustomerBookingRow[] {
    const { customerId, status, before, limit } = query;
    const params: Params = { customerId, limit, ...(status !== null && { status }), ...(before !== null && { createdAt: before.createdAt, id: before.id }) };
    const statement = status === null ? (before === null ? this.queries.all : this.queries.before) : before === null ? this.queries.status : this.queries.statusBefore;
    return statement.all(params);
  }
}
