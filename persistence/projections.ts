import { statusAfter, wakeAtAfter, type BookingEvent } from '../actors/booking/decider.js';
import type { VehicleEvent } from '../actors/vehicle/decider.js';
import type { JournalRow, Projector } from '../runtime/kernel/journal.js';
import type { Db } from './sqlite.js';

/**
 * Read models kept by the journal engine inside its group-commit transaction: never ahead of, never
 * behind the events they derive from. Telemetry columns (position, battery, presence) are written by
 * runtime/telemetry, not here.
 */
export function createProjectors(db: Db): Projector[] {
  return [vehicleProjector(db), bookingProjector(db)];
}

function vehicleProjector(db: Db): Projector {
  const register = db.prepare(
    `INSERT INTO vehicles (id, type, model, status, booking_id, lat, lon, registered_at, updated_at)
     VALUES (@id, @type, @model, 'AVAILABLE', NULL, @lat, @lon, @at, @at)
     ON CONFLICT (id) DO NOTHING`,
  );
  const setStatus = db.prepare(`UPDATE vehicles SET status = @status, booking_id = @bookingId, updated_at = @at WHERE id = @id`);
  return projecting(['vehicle/'], (row: JournalRow) => {
    if (!row.persistenceKey.startsWith('vehicle/')) return;
    const event = row.data as VehicleEvent;
    const id = event.vehicleId;
    switch (event.type) {
      case 'VehicleRegistered':
        register.run({ id, type: event.vehicleType, model: event.model, lat: event.location.lat, lon: event.location.lon, at: event.at });
        return;
      case 'VehicleReserved':
        setStatus.run({ id, status: 'RESERVED', bookingId: event.bookingId, at: event.at });
        return;
      case 'VehicleUnlocked':
        setStatus.run({ id, status: 'IN_USE', bookingId: event.bookingId, at: event.at });
        return;
      case 'VehicleReleased':
      case 'VehicleLocked':
        setStatus.run({ id, status: 'AVAILABLE', bookingId: null, at: event.at });
        return;
      default:
        return; // command bookkeeping: no visible change
    }
  });
}

function bookingProjector(db: Db): Projector {
  const insert = db.prepare(
    `INSERT INTO bookings (id, customer_id, vehicle_id, status, created_at, expires_at, wake_at, updated_at)
     VALUES (@id, @customerId, @vehicleId, 'REQUESTED', @at, @expiresAt, @wakeAt, @at)
     ON CONFLICT (id) DO NOTHING`,
  );
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
      insert.run({ id: event.bookingId, customerId: event.customerId, vehicleId: event.vehicleId, at: event.at, expiresAt: event.confirmBy, wakeAt: event.confirmBy });
      return;
    }
    const params = { id: event.bookingId, status: statusAfter(event), expiresAt: event.type === 'BookingConfirmed' ? event.expiresAt : null, wakeAt: wakeAt ?? null, at };
    if (wakeAt === undefined) updateKeepingWake.run({ id: params.id, status: params.status, at });
    else update.run(params);
  });
}

/** A projector that says which rows it reads (the journal writes the others without a savepoint). */
const projecting = (keyPrefixes: readonly string[], project: (row: JournalRow) => void): Projector => Object.assign(project, { keyPrefixes });
