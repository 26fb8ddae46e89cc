import { holderOf, initialVehicleState, pendingCommand, phaseOf, recentCommandsOf, rideTime, type IssuedCommand, type RegisteredStatus, type VehicleProfile, type VehicleState } from './state.js';

/**
 * A vehicle's state as one flat record with a null for whatever its status lacks: the shape the state
 * had before it became a union (state.ts), kept as its outside form. Snapshots store it, so snapshots
 * written before the union still recover; traces and replays show it, so old and new traces read alike
 * (the trace diagram finds a sent command in `inFlight`).
 */
export interface VehicleRecord {
  /** Null before registration. */
  readonly profile: VehicleProfile | null;
  /** AVAILABLE before registration too. */
  readonly status: RegisteredStatus;
  readonly bookingId: string | null;
  /** The UNLOCK or LOCK waiting for the device's answer (DESIGN's UNLOCKING / LOCKING). */
  readonly inFlight: IssuedCommand | null;
  readonly recentCommands: readonly IssuedCommand[];
  readonly unlockedAt: number | null;
  readonly lockedAt: number | null;
}

export function toVehicleRecord(state: VehicleState): VehicleRecord {
  return {
    profile: state.status === 'UNREGISTERED' ? null : state.profile,
    status: state.status === 'UNREGISTERED' ? 'AVAILABLE' : state.status,
    bookingId: holderOf(state) ?? null,
    inFlight: pendingCommand(state) ?? null,
    recentCommands: recentCommandsOf(state),
    unlockedAt: rideTime(state, 'UNLOCK') ?? null,
    lockedAt: rideTime(state, 'LOCK') ?? null,
  };
}

/** The record with the vehicle's phase first: what a trace step shows as its state. */
export const describeVehicle = (state: VehicleState): { readonly phase: string } & VehicleRecord => ({ phase: phaseOf(state), ...toVehicleRecord(state) });

/**
 * The state a record stands for. Throws on a record that no vehicle state flattens to (a reserved
 * vehicle without its booking): a corrupt snapshot must fail the recovery, not become a wrong state.
 */
export function fromVehicleRecord(record: VehicleRecord): VehicleState {
  const { profile, recentCommands, bookingId, inFlight, unlockedAt, lockedAt } = record;
  if (profile === null) return initialVehicleState;
  switch (record.status) {
    case 'AVAILABLE':
      return { status: 'AVAILABLE', profile, recentCommands, ...(unlockedAt !== null && lockedAt !== null && { lastRide: { unlockedAt, lockedAt } }) };
    case 'RESERVED':
      if (bookingId === null) break;
      return { status: 'RESERVED', profile, recentCommands, bookingId, ...(inFlight && (inFlight.command === 'UNLOCK' ? { unlocking: inFlight } : { securing: inFlight })) };
    case 'IN_USE':
      if (bookingId === null || unlockedAt === null) break;
      return { status: 'IN_USE', profile, recentCommands, bookingId, unlockedAt, ...(inFlight?.command === 'LOCK' && { locking: inFlight }) };
    default:
      break;
  }
  throw new Error(`no vehicle state is the record ${JSON.stringify(record)}`);
}
