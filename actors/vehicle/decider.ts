import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';
import type { Location, VehicleType } from '../contract/views.js';
import { endRefusal, startRefusal, type AreaCheck } from './area-rules.js';


/**
 * The vehicle's business rules, pure: `decide(command, state) → events | rejection` and
 * `evolve(state, event) → state`. The nact shell (actor.ts) supplies time, ids and presence.
 */

export type DeviceCommandKind = 'UNLOCK' | 'LOCK';
export type PersistedVehicleStatus = 'AVAILABLE' | 'RESERVED' | 'IN_USE' | 'MAINTENANCE';

/** What the shell knows about the device at decision time (presence and battery come from MQTT). */
export interface DeviceConditions {
  /** null: the vehicle never reported presence (fleets without presence still work). */
  readonly online: boolean | null;
  readonly battery: number | null;
}

/** Below this charge a vehicle is not bookable. */
export const MIN_BOOKABLE_BATTERY = 15;
/** Issued commands remembered for late and repeated replies. */
const REMEMBERED_COMMANDS = 8;

// ---- commands ----------------------------------------------------------------------------------

export type VehicleCommand =
  | { readonly type: 'RegisterVehicle'; readonly vehicleId: string; readonly vehicleType: VehicleType; readonly model: string | null; readonly location: Location; readonly at: number }
  /** areaCheck: set when an operating area is in force (a ride may not start everywhere). */
  | { readonly type: 'ReserveVehicle'; readonly vehicleId: string; readonly bookingId: string; readonly conditions: DeviceConditions; readonly at: number; readonly areaCheck?: AreaCheck }
  | { readonly type: 'ReleaseVehicle'; readonly vehicleId: string; readonly bookingId: string; readonly reason: string; readonly at: number }
  /** areaCheck: a LOCK that ends a customer's trip while an operating area is in force (the end must be allowed where the vehicle is). */
  | { readonly type: 'RequestDeviceCommand'; readonly vehicleId: string; readonly command: DeviceCommandKind; readonly bookingId: string; readonly commandId: string; readonly online: boolean | null; readonly at: number; readonly expiresAt: number; readonly areaCheck?: AreaCheck }
  | { readonly type: 'RecordDeviceReply'; readonly vehicleId: string; readonly commandId: string; readonly reply: 'UNLOCKED' | 'LOCKED' | 'REJECTED'; readonly reason: string | null; readonly at: number }
  | { readonly type: 'RecordCommandFailure'; readonly vehicleId: string; readonly commandId: string; readonly reason: 'timeout' | 'offline'; readonly at: number };

// ---- events ------------------------------------------------------------------------------------

export type VehicleEvent =
  | { readonly type: 'VehicleRegistered'; readonly vehicleId: string; readonly vehicleType: VehicleType; readonly model: string | null; readonly location: Location; readonly at: number }
  | { readonly type: 'VehicleReserved'; readonly vehicleId: string; readonly bookingId: string; readonly at: number }
  | { readonly type: 'VehicleReleased'; readonly vehicleId: string; readonly bookingId: string; readonly reason: string; readonly at: number }
  | { readonly type: 'UnlockRequested'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly at: number; readonly expiresAt: number }
  | { readonly type: 'VehicleUnlocked'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly at: number }
  | { readonly type: 'UnlockTimedOut'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly reason: 'timeout' | 'offline'; readonly at: number }
  | { readonly type: 'LockRequested'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly at: number; readonly expiresAt: number }
  | { readonly type: 'VehicleLocked'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly at: number }
  | { readonly type: 'LockTimedOut'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly reason: 'timeout' | 'offline'; readonly at: number }
  | { readonly type: 'DeviceRejectedCommand'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly command: DeviceCommandKind; readonly reason: string; readonly at: number };

// ---- state -------------------------------------------------------------------------------------

export interface IssuedCommand {
  readonly commandId: string;
  readonly command: DeviceCommandKind;
  readonly bookingId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** When the device confirmed it (UNLOCKED / LOCKED applied); null while unanswered or failed. */
  readonly confirmedAt: number | null;
}

export interface VehicleState {
  readonly profile: { readonly vehicleType: VehicleType; readonly model: string | null; readonly registeredAt: number; readonly location: Location } | null;
  readonly status: PersistedVehicleStatus;
  readonly bookingId: string | null;
  /** The UNLOCK or LOCK waiting for the device's answer (DESIGN's UNLOCKING / LOCKING). */
  readonly inFlight: IssuedCommand | null;
  /** Recently issued commands, newest last: a late UNLOCKED for one of them is still applied. */
  readonly recentCommands: readonly IssuedCommand[];
  readonly unlockedAt: number | null;
  readonly lockedAt: number | null;
}

export const initialVehicleState: VehicleState = {
  profile: null,
  status: 'AVAILABLE',
  bookingId: null,
  inFlight: null,
  recentCommands: [],
  unlockedAt: null,
  lockedAt: null,
};

/** The step a developer sees in a trace: AVAILABLE, RESERVED, UNLOCKING, IN_USE, LOCKING, … */
export function phaseOf(state: VehicleState): string {
  if (!state.profile) return 'UNREGISTERED';
  if (state.inFlight) return state.inFlight.command === 'UNLOCK' ? 'UNLOCKING' : 'LOCKING';
  return state.status;
}

// ---- decide ------------------------------------------------------------------------------------

export function decide(command: VehicleCommand, state: VehicleState): Decision<VehicleEvent> {
  const { vehicleId } = command;
  if (command.type === 'RegisterVehicle') {
    if (state.profile) return refuse({ type: 'VehicleAlreadyRegistered', vehicleId });
    const { vehicleType, model, location, at } = command;
    return emit({ type: 'VehicleRegistered', vehicleId, vehicleType, model, location, at });
  }
  if (!state.profile) return refuse({ type: 'VehicleNotFound', vehicleId });

  switch (command.type) {
    case 'ReserveVehicle': {
      const { bookingId, conditions, at } = command;
      if (state.bookingId === bookingId) return emit(); // a retried reserve of the same booking
      if (state.status !== 'AVAILABLE') return refuse({ type: 'VehicleUnavailable', vehicleId, status: state.status });
      if (conditions.online === false) return refuse({ type: 'VehicleOffline', vehicleId });
      const outside = command.areaCheck && startRefusal(vehicleId, state.profile.vehicleType, command.areaCheck, at);
      if (outside) return refuse(outside);
      if (conditions.battery !== null && conditions.battery < MIN_BOOKABLE_BATTERY) {
        return refuse({ type: 'VehicleLowBattery', vehicleId, battery: conditions.battery });
      }
      return emit({ type: 'VehicleReserved', vehicleId, bookingId, at });
    }
    case 'ReleaseVehicle': {
      const { bookingId, reason, at } = command;
      // Releasing what this booking does not hold is a no-op: compensations may run more than once.
      if (state.bookingId !== bookingId || state.status === 'AVAILABLE') return emit();
      // An open car is not handed back: it opened after its booking ended (a late UNLOCKED), and that
      // booking locks it first (LOCK frees it); its compensation is retried meanwhile.
      if (state.status === 'IN_USE') return refuse({ type: 'VehicleUnavailable', vehicleId, status: state.status });
      return emit({ type: 'VehicleReleased', vehicleId, bookingId, reason, at });
    }
    case 'RequestDeviceCommand':
      return decideDeviceCommand(command, state);
    case 'RecordDeviceReply':
      return decideReply(command, state);
    case 'RecordCommandFailure': {
      const pending = state.inFlight;
      if (!pending || pending.commandId !== command.commandId) return emit();
      const failed = { vehicleId, bookingId: pending.bookingId, commandId: pending.commandId, reason: command.reason, at: command.at };
      return emit(pending.command === 'UNLOCK' ? { type: 'UnlockTimedOut', ...failed } : { type: 'LockTimedOut', ...failed });
    }
    default:
      return unreachable(command);
  }
}

function decideDeviceCommand(command: Extract<VehicleCommand, { type: 'RequestDeviceCommand' }>, state: VehicleState): Decision<VehicleEvent> {
  const { vehicleId, bookingId, commandId, at, expiresAt } = command;
  const holdsVehicle = state.bookingId === bookingId;
  if (command.command === 'UNLOCK') {
    if (holdsVehicle && state.status === 'IN_USE') return emit(); // already open: answered from state
    if (!holdsVehicle || state.status !== 'RESERVED') return refuse({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId });
  } else {
    // Already locked and released (maybe reserved by someone else since): a retried end.
    if (!holdsVehicle && confirmedCommand(state, 'LOCK', bookingId)) return emit();
    if (!holdsVehicle || state.status !== 'IN_USE') return refuse({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId });
  }
  // One command on the wire per vehicle: a concurrent request for the same booking waits for it.
  if (state.inFlight && state.inFlight.bookingId === bookingId && state.inFlight.command === command.command) return emit();
  if (command.online === false) return refuse({ type: 'VehicleOffline', vehicleId });
  // Checked only when a new LOCK would go out: a retried end of a trip already locked is answered above.
  const cannotEnd = command.command === 'LOCK' && command.areaCheck && endRefusal(vehicleId, state.profile!.vehicleType, command.areaCheck, at);
  if (cannotEnd) return refuse(cannotEnd);
  return emit(
    command.command === 'UNLOCK'
      ? { type: 'UnlockRequested', vehicleId, bookingId, commandId, at, expiresAt }
      : { type: 'LockRequested', vehicleId, bookingId, commandId, at, expiresAt },
  );
}

function decideReply(command: Extract<VehicleCommand, { type: 'RecordDeviceReply' }>, state: VehicleState): Decision<VehicleEvent> {
  const { vehicleId, commandId, at } = command;
  const issued = findIssued(state, commandId);
  if (!issued) return emit(); // unknown command id: not ours, or long forgotten
  const { bookingId } = issued;
  switch (command.reply) {
    case 'UNLOCKED': {
      // Late answers count: the car *is* open, so the state must say so (DESIGN).
      if (issued.command !== 'UNLOCK') return emit();
      const heldForIt = state.bookingId === bookingId && state.status === 'RESERVED';
      // Also after its booking released the vehicle (the unlock timed out, then the booking expired or
      // was cancelled): the car stands open, so it is IN_USE under that booking again, which hears of it
      // and locks it. Not over another booking's reservation, and never twice for one command.
      const openedAfterRelease = state.status === 'AVAILABLE' && issued.confirmedAt === null;
      if (!heldForIt && !openedAfterRelease) return emit();
      return emit({ type: 'VehicleUnlocked', vehicleId, bookingId, commandId, at });
    }
    case 'LOCKED':
      if (issued.command !== 'LOCK' || state.bookingId !== bookingId || state.status !== 'IN_USE') return emit();
      return emit({ type: 'VehicleLocked', vehicleId, bookingId, commandId, at });
    case 'REJECTED':
      if (state.inFlight?.commandId !== commandId) return emit();
      return emit({ type: 'DeviceRejectedCommand', vehicleId, bookingId, commandId, command: issued.command, reason: command.reason ?? 'unspecified', at });
    default:
      return unreachable(command.reply);
  }
}

/** The booking's UNLOCK or LOCK that the device confirmed, if still remembered. */
export function confirmedCommand(state: VehicleState, command: DeviceCommandKind, bookingId: string): IssuedCommand | undefined {
  return state.recentCommands.find((issued) => issued.command === command && issued.bookingId === bookingId && issued.confirmedAt !== null);
}

function findIssued(state: VehicleState, commandId: string): IssuedCommand | undefined {
  if (state.inFlight?.commandId === commandId) return state.inFlight;
  return state.recentCommands.find((issued) => issued.commandId === commandId);
}

// ---- evolve ------------------------------------------------------------------------------------

export function evolve(state: VehicleState, event: VehicleEvent): VehicleState {
  switch (event.type) {
    case 'VehicleRegistered':
      return {
        ...state,
        profile: { vehicleType: event.vehicleType, model: event.model, registeredAt: event.at, location: event.location },
        status: 'AVAILABLE',
      };
    case 'VehicleReserved':
      return { ...state, status: 'RESERVED', bookingId: event.bookingId, unlockedAt: null, lockedAt: null };
    case 'VehicleReleased':
      return { ...state, status: 'AVAILABLE', bookingId: null, inFlight: null };
    case 'UnlockRequested':
    case 'LockRequested': {
      const issued: IssuedCommand = {
        commandId: event.commandId,
        command: event.type === 'UnlockRequested' ? 'UNLOCK' : 'LOCK',
        bookingId: event.bookingId,
        issuedAt: event.at,
        expiresAt: event.expiresAt,
        confirmedAt: null,
      };
      return { ...state, inFlight: issued, recentCommands: [...state.recentCommands, issued].slice(-REMEMBERED_COMMANDS) };
    }
    case 'VehicleUnlocked':
      return { ...state, status: 'IN_USE', bookingId: event.bookingId, inFlight: null, unlockedAt: event.at, recentCommands: confirm(state.recentCommands, event.commandId, event.at) };
    case 'VehicleLocked':
      return { ...state, status: 'AVAILABLE', bookingId: null, inFlight: null, lockedAt: event.at, recentCommands: confirm(state.recentCommands, event.commandId, event.at) };
    case 'UnlockTimedOut':
    case 'LockTimedOut':
    case 'DeviceRejectedCommand':
      return { ...state, inFlight: null };
    default:
      return unreachable(event);
  }
}

function confirm(commands: readonly IssuedCommand[], commandId: string, at: number): readonly IssuedCommand[] {
  return commands.map((issued) => (issued.commandId === commandId ? { ...issued, confirmedAt: at } : issued));
}
