import type { DeviceCommandType } from '../contract/device-protocol.js';
import type { Location, VehicleType } from '../contract/views.js';

/**
 * A vehicle's state, one variant per status, each holding only what exists in it: an unregistered
 * vehicle has no profile; a reserved or open one has the booking that holds it; the UNLOCK (or LOCK)
 * waiting for the device's answer exists only while it waits (DESIGN's UNLOCKING / LOCKING phases).
 * evolve (decider.ts) moves between them; record.ts flattens a state for snapshots and traces.
 */

export interface VehicleProfile {
  readonly vehicleType: VehicleType;
  readonly model: string | null;
  readonly registeredAt: number;
  readonly location: Location;
}

/** A device command the vehicle sent: remembered for late and repeated replies. */
export interface IssuedCommand {
  readonly commandId: string;
  readonly command: DeviceCommandType;
  readonly bookingId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** When the device confirmed it (UNLOCKED / LOCKED applied); null while unanswered or failed. */
  readonly confirmedAt: number | null;
  /** When the device refused it (REJECTED): answered, not applied. Absent in records written before. */
  readonly refusedAt?: number;
}

/** What every registered vehicle has. */
interface Registered {
  readonly profile: VehicleProfile;
  /** Recently issued commands, newest last: a late UNLOCKED for one of them is still applied. */
  readonly recentCommands: readonly IssuedCommand[];
}

export interface UnregisteredVehicle {
  readonly status: 'UNREGISTERED';
}

export interface AvailableVehicle extends Registered {
  readonly status: 'AVAILABLE';
  /** The ride that ended with the last LOCK, for the record; a new reservation forgets it. */
  readonly lastRide?: { readonly unlockedAt: number; readonly lockedAt: number };
}

export interface ReservedVehicle extends Registered {
  readonly status: 'RESERVED';
  readonly bookingId: string;
  /** The booking's UNLOCK, while it waits for the device's answer. */
  readonly unlocking?: IssuedCommand;
  /**
   * A LOCK sent to the reserved vehicle because an UNLOCK of its booking went unanswered (the car may
   * have opened): its LOCKED settles that unlock, so the booking can end without a free ride.
   */
  readonly securing?: IssuedCommand;
}

export interface InUseVehicle extends Registered {
  readonly status: 'IN_USE';
  readonly bookingId: string;
  readonly unlockedAt: number;
  /** The booking's LOCK, while it waits for the device's answer. */
  readonly locking?: IssuedCommand;
}

export type RegisteredVehicle = AvailableVehicle | ReservedVehicle | InUseVehicle;
export type VehicleState = UnregisteredVehicle | RegisteredVehicle;
/** The statuses a vehicle moves through once registered (the contract's VehicleStatus without OFFLINE and MAINTENANCE). */
export type RegisteredStatus = RegisteredVehicle['status'];

export const initialVehicleState: VehicleState = { status: 'UNREGISTERED' };

/** The step a developer sees in a trace: AVAILABLE, RESERVED, UNLOCKING, IN_USE, LOCKING, … */
export function phaseOf(state: VehicleState): string {
  const pending = pendingCommand(state);
  if (pending) return pending.command === 'UNLOCK' ? 'UNLOCKING' : 'LOCKING';
  return state.status;
}

/** The booking that holds the vehicle (reserved or open), if any. */
export function holderOf(state: VehicleState): string | undefined {
  return state.status === 'RESERVED' || state.status === 'IN_USE' ? state.bookingId : undefined;
}

/** The UNLOCK or LOCK waiting for the device's answer (at most one per vehicle). */
export function pendingCommand(state: VehicleState): IssuedCommand | undefined {
  if (state.status === 'RESERVED') return state.unlocking ?? state.securing;
  if (state.status === 'IN_USE') return state.locking;
  return undefined;
}

export function recentCommandsOf(state: VehicleState): readonly IssuedCommand[] {
  return state.status === 'UNREGISTERED' ? [] : state.recentCommands;
}

/** The booking's UNLOCK or LOCK that the device confirmed, if still remembered. */
export function confirmedCommand(state: VehicleState, command: DeviceCommandType, bookingId: string): IssuedCommand | undefined {
  return recentCommandsOf(state).find((issued) => issued.command === command && issued.bookingId === bookingId && issued.confirmedAt !== null);
}

/** When the vehicle last opened (UNLOCK) or locked (LOCK) in its current or last ride, as the state knows it. */
export function rideTime(state: VehicleState, command: DeviceCommandType): number | undefined {
  if (state.status === 'IN_USE') return command === 'UNLOCK' ? state.unlockedAt : undefined;
  if (state.status === 'AVAILABLE' && state.lastRide) return command === 'UNLOCK' ? state.lastRide.unlockedAt : state.lastRide.lockedAt;
  return undefined;
}

/**
 * The booking's UNLOCK whose outcome nobody knows: sent, neither applied nor refused by the device,
 * and not followed by a LOCK the device confirmed. While it exists the car may be open (a late
 * UNLOCKED), so the vehicle is not handed back without first being locked (decider.ts).
 */
export function unsettledUnlock(state: VehicleState, bookingId: string): IssuedCommand | undefined {
  const commands = recentCommandsOf(state).filter((issued) => issued.bookingId === bookingId);
  return commands.find(
    (issued) =>
      issued.command === 'UNLOCK' && issued.confirmedAt === null && issued.refusedAt === undefined && !settledByLock(commands, issued),
  );
}

/** A LOCK of the same booking, sent after `unlock` and confirmed by the device: the car is shut since. */
export const settledByLock = (commands: readonly IssuedCommand[], unlock: IssuedCommand): boolean =>
  commands.some((issued) => issued.command === 'LOCK' && issued.bookingId === unlock.bookingId && issued.issuedAt >= unlock.issuedAt && issued.confirmedAt !== null);
