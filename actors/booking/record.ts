import type { Rejection } from '../contract/rejections.js';
import type { Money, VehicleType } from '../contract/views.js';
import type { Authorization, BookingState } from './decider.js';

/**
 * The booking as one flat record: every field, null (or false) where it does not apply. It is the
 * shape the booking's state had before it became a union by status, and it stays the shape outside
 * the actor: traces show it (`describe`: recorded traces, the golden files and the trace viewer
 * compare states field by field) and snapshots store it, so a snapshot written by either build
 * recovers in the other.
 */
export interface BookingRecord {
  readonly status: BookingState['status'];
  readonly bookingId: string | null;
  readonly customerId: string | null;
  readonly vehicleId: string | null;
  readonly vehicleType: VehicleType | null;
  readonly paymentMethod: string | null;
  readonly durationMinutes: number;
  readonly createdAt: number | null;
  readonly expiresAt: number | null;
  readonly authorization: Authorization | null;
  readonly unlockedAt: number | null;
  readonly endedAt: number | null;
  readonly charge: Money | null;
  readonly rejection: Rejection | null;
  readonly needsCompensation: boolean;
  readonly mustLock: boolean;
}

const NEW_RECORD: BookingRecord = {
  status: 'NEW',
  bookingId: null,
  customerId: null,
  vehicleId: null,
  vehicleType: null,
  paymentMethod: null,
  durationMinutes: 0,
  createdAt: null,
  expiresAt: null,
  authorization: null,
  unlockedAt: null,
  endedAt: null,
  charge: null,
  rejection: null,
  needsCompensation: false,
  mustLock: false,
};

/** The state as a record, its fields always in the same order. */
export function toBookingRecord(state: BookingState): BookingRecord {
  if (state.status === 'NEW') return NEW_RECORD;
  const { status, bookingId, customerId, vehicleId, paymentMethod, durationMinutes, createdAt, expiresAt } = state;
  return {
    status,
    bookingId,
    customerId,
    vehicleId,
    vehicleType: 'vehicleType' in state ? state.vehicleType : null,
    paymentMethod,
    durationMinutes,
    createdAt,
    expiresAt,
    authorization: 'authorization' in state ? state.authorization : null,
    unlockedAt: 'unlockedAt' in state ? state.unlockedAt : null,
    endedAt: 'endedAt' in state ? state.endedAt : null,
    charge: state.status === 'COMPLETED' ? state.charge : null,
    rejection: state.status === 'REJECTED' ? state.rejection : null,
    needsCompensation: 'needsCompensation' in state ? state.needsCompensation : false,
    mustLock: 'mustLock' in state ? state.mustLock : false,
  };
}

/**
 * A record (a snapshot's data) back as the state: each status takes the fields it holds. Written by
 * this module's `toBookingRecord`, or by a build before the union; the two agree field by field. A
 * record without a field its status must hold is corrupt: recovery fails on it rather than guess.
 */
export function fromBookingRecord(data: unknown): BookingState {
  const record = data as BookingRecord;
  if (record.status === 'NEW') return { status: 'NEW' };
  const held = <Key extends keyof BookingRecord>(key: Key): NonNullable<BookingRecord[Key]> => {
    const value = record[key];
    if (value === null || value === undefined) throw new Error(`a ${record.status} booking snapshot without ${key}`);
    return value;
  };
  const request = { bookingId: held('bookingId'), customerId: held('customerId'), vehicleId: held('vehicleId'), paymentMethod: held('paymentMethod'), durationMinutes: record.durationMinutes, createdAt: held('createdAt'), expiresAt: held('expiresAt') };
  const settling = { needsCompensation: record.needsCompensation, mustLock: record.mustLock };
  switch (record.status) {
    case 'REQUESTED':
      return { status: 'REQUESTED', ...request };
    case 'VEHICLE_RESERVED':
      return { status: 'VEHICLE_RESERVED', ...request, vehicleType: held('vehicleType') };
    case 'CONFIRMED':
      return { status: 'CONFIRMED', ...request, vehicleType: held('vehicleType'), authorization: held('authorization') };
    case 'ACTIVE':
      return { status: 'ACTIVE', ...request, vehicleType: held('vehicleType'), authorization: held('authorization'), unlockedAt: held('unlockedAt'), endedAt: record.endedAt ?? null };
    case 'COMPLETED': {
      const trip = { vehicleType: held('vehicleType'), authorization: held('authorization'), unlockedAt: held('unlockedAt') };
      return { status: 'COMPLETED', ...request, ...trip, endedAt: held('endedAt'), charge: held('charge'), mustLock: record.mustLock };
    }
    case 'REJECTED':
      return { status: 'REJECTED', ...request, vehicleType: record.vehicleType ?? null, rejection: held('rejection'), ...settling };
    case 'CANCELLED':
      return { status: 'CANCELLED', ...request, vehicleType: held('vehicleType'), authorization: held('authorization'), ...settling };
    case 'EXPIRED':
      return { status: 'EXPIRED', ...request, vehicleType: record.vehicleType ?? null, authorization: record.authorization ?? null, ...settling };
  }
}
