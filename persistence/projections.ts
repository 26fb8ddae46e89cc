import { randomBytes } from 'node:crypto';
import { statusAfter, wakeAtAfter, type BookingEvent } from '../actors/booking/decider.js';
import type { VehicleEvent } from '../actors/vehicle/decider.js';
import type { JournalRow, Projector } from '../runtime/kernel/journal.js';
import type { Db } from './sqlite.js';

/**
 * Read models kept by the journal engine inside its group-commit transaction: never ahead of, never
 * behind the events they derive from. Telemetry columns (position, battery, presence) are written by
 * adapters/telemetry, not here.
 */
export function createProjectors(db: Db): Projector[] {
  return [vehicleProjector(db), bookingProjector(db)];
}

function vehicleProjector(db: Db): Projector {
  const register = db.prepare(
    `INSERT INTO vehicles (id, type, model, status, booking_id, lat, lon, registered_at, updated_at, public_id)
     VALUES (@id, @type, @model, 'AVAILABLE', NULL, @lat, @lon, @at, @at, @publicId)
     ON CONFLICT (id) DO NOTHING`,
  );
  const setStatus = db.prepare(`UPDATE vehicles SET status = @status, booking_id = @bookingId, updated_at = @at WHERE id = @id`);
  // GBFS: "vehicle_id … MUST be rotated to a random string after each trip" — so no one can follow a
  // vehicle (and its rider) across the public feed. Released without a trip (cancelled, expired) rotates too.
  const freeWithNewPublicId = db.prepare(`UPDATE vehicles SET status = 'AVAILABLE', booking_id = NULL, updated_at = @at, public_id = @publicId WHERE id = @id`);
  return projecting(['vehicle/'], (row: JournalRow) => {
    if (!row.persistenceKey.startsWith('vehicle/')) return;
    const event = row.data as VehicleEvent;
    const id = event.vehicleId;
    switch (event.type) {
      case 'VehicleRegistered':
        register.run({ id, type: event.vehicleType, model: event.model, lat: event.location.lat, lon: event.location.lon, at: event.at, publicId: newPublicId() });
        return;
      case 'VehicleReserved':
        setStatus.run({ id, status: 'RESERVED', bookingId: event.bookingId, at: event.at });
        return;
      case 'VehicleUnlocked':
        setStatus.run({ id, status: 'IN_USE', bookingId: event.bookingId, at: event.at });
        return;
      case 'VehicleReleased':
      case 'VehicleLocked':
        freeWithNewPublicId.run({ id, at: event.at, publicId: newPublicId() });
        return;
      default:
        return; // command bookkeeping: no visible change
    }
  });
}

function bookingProjector(db: Db): Projector {
  const insert = db.prepare(
    `INSERT INTO bookings (id, customer_id, vehicle_id, status, created_at, expires_at, wake_at, updated_at, duration_minutes)
     VALUES (@id, @customerId, @vehicleId, 'REQUESTED', @at, @expiresAt, @wakeAt, @at, @durationMinutes)
     ON CONFLICT (id) DO NOTHING`,
  );
  // A ride is due back at its unlock plus the booked minutes; an ended booking is due nowhere.
  const setDueBack = db.prepare(`UPDATE bookings SET due_back_at = @unlockedAt + duration_minutes * 60000 WHERE id = @id AND duration_minutes IS NOT NULL`);
  const clearDueBack = db.prepare(`UPDATE bookings SET due_back_at = NULL WHERE id = @id AND due_back_at IS NOT NULL`);
  const update = db.prepare(
    `UPDATE bookings SET status = COALESCE(@status, status), expires_at = COALESCE(@expiresAt, expires_at), wake_at = @wakeAt, updated_at = @at WHERE id = @id`,
  );
  const updateKeepingWake = db.prepare(`UPDATE bookings SET status = COALESCE(@status, status), updated_at = @at WHERE id = @id`);
  return projecting(['booking/'], (row: JournalRow) => {
    if (!row.persistenceKey.startsWith('booking/')) return;
    const event = row.data as BookingEvent;
    // Status and timer as the decider derives them from the event: the projector sees no state.
    const wakeAt = wakeAtAfter(event);
    const at = row.createdAt;
    if (event.type === 'BookingRequested') {
      insert.run({ id: event.bookingId, customerId: event.customerId, vehicleId: event.vehicleId, at: event.at, expiresAt: event.confirmBy, wakeAt: event.confirmBy, durationMinutes: event.durationMinutes });
      return;
    }
    if (event.type === 'BookingActivated') setDueBack.run({ id: event.bookingId, unlockedAt: event.unlockedAt });
    if (event.type === 'BookingCompleted' || event.type === 'BookingCancelled' || event.type === 'BookingExpired') clearDueBack.run({ id: event.bookingId });
    const params = { id: event.bookingId, status: statusAfter(event), expiresAt: event.type === 'BookingConfirmed' ? event.expiresAt : null, wakeAt: wakeAt ?? null, at };
    if (wakeAt === undefined) updateKeepingWake.run({ id: params.id, status: params.status, at });
    else update.run(params);
  });
}

/** 128 random bits as hex: never derived from the internal id, so it says nothing about the vehicle. */
export const newPublicId = (): string => randomBytes(16).toString('hex');

/** A projector that says which rows it reads (the journal writes the others without a savepoint). */
const projecting = (keyPrefixes: readonly string[], project: (row: JournalRow) => void): Projector => Object.assign(project, { keyPrefixes });
