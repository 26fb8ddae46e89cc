import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';
import type { DeviceCommandType, DeviceReplyType } from '../contract/device-protocol.js';
import type { Location, VehicleType } from '../contract/views.js';
import { endRefusal, startRefusal, type AreaCheck } from './area-rules.js';
import { confirmedCommand, holderOf, pendingCommand, recentCommandsOf, settledByLock, unsettledUnlock, type InUseVehicle, type IssuedCommand, type RegisteredVehicle, type ReservedVehicle, type VehicleState } from './state.js';


/**
 * The vehicle's business rules, pure: `decide(command, state) → events | rejection` and
 * `evolve(state, event) → state` over the state union of state.ts. The nact shell (actor.ts)
 * supplies time, ids and presence.
 */

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
  /** force: hand the vehicle back even while an UNLOCK of the booking is unanswered (the booking gave up waiting for the device). */
  | { readonly type: 'ReleaseVehicle'; readonly vehicleId: string; readonly bookingId: string; readonly reason: string; readonly at: number; readonly force?: boolean }
  /** areaCheck: a LOCK that ends a customer's trip while an operating area is in force (the end must be allowed where the vehicle is). */
  | { readonly type: 'RequestDeviceCommand'; readonly vehicleId: string; readonly command: DeviceCommandType; readonly bookingId: string; readonly commandId: string; readonly online: boolean | null; readonly neverSeen: boolean; readonly at: number; readonly expiresAt: number; readonly areaCheck?: AreaCheck }
  | { readonly type: 'RecordDeviceReply'; readonly vehicleId: string; readonly commandId: string; readonly reply: DeviceReplyType; readonly reason: string | null; readonly at: number }
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
  /** The device confirmed the LOCK sent to a reserved vehicle whose UNLOCK went unanswered: shut, still reserved. */
  | { readonly type: 'VehicleSecured'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly at: number }
  | { readonly type: 'LockTimedOut'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly reason: 'timeout' | 'offline'; readonly at: number }
  | { readonly type: 'DeviceRejectedCommand'; readonly vehicleId: string; readonly bookingId: string; readonly commandId: string; readonly command: DeviceCommandType; readonly reason: string; readonly at: number };

// ---- decide ------------------------------------------------------------------------------------

export function decide(command: VehicleCommand, state: VehicleState): Decision<VehicleEvent> {
  const { vehicleId } = command;
  if (command.type === 'RegisterVehicle') {
    if (state.status !== 'UNREGISTERED') return refuse({ type: 'VehicleAlreadyRegistered', vehicleId });
    const { vehicleType, model, location, at } = command;
    return emit({ type: 'VehicleRegistered', vehicleId, vehicleType, model, location, at });
  }
  if (state.status === 'UNREGISTERED') return refuse({ type: 'VehicleNotFound', vehicleId });

  switch (command.type) {
    case 'ReserveVehicle':
      return decideReserve(command, state);
    case 'ReleaseVehicle':
      return decideRelease(command, state);
    case 'RequestDeviceCommand':
      return decideDeviceCommand(command, state);
    case 'RecordDeviceReply':
      return decideReply(command, state);
    case 'RecordCommandFailure':
      return decideFailure(command, state);
    default:
      return unreachable(command);
  }
}

type CommandOf<Type extends VehicleCommand['type']> = Extract<VehicleCommand, { type: Type }>;

function decideReserve(command: CommandOf<'ReserveVehicle'>, state: RegisteredVehicle): Decision<VehicleEvent> {
  const { vehicleId, bookingId, conditions, at } = command;
  if (holderOf(state) === bookingId) return emit(); // a retried reserve of the same booking
  if (state.status !== 'AVAILABLE') return refuse({ type: 'VehicleUnavailable', vehicleId, status: state.status });
  if (conditions.online === false) return refuse({ type: 'VehicleOffline', vehicleId, presence: 'offline' });
  const outside = command.areaCheck && startRefusal(vehicleId, state.profile.vehicleType, command.areaCheck, at);
  if (outside) return refuse(outside);
  if (conditions.battery !== null && conditions.battery < MIN_BOOKABLE_BATTERY) {
    return refuse({ type: 'VehicleLowBattery', vehicleId, battery: conditions.battery });
  }
  return emit({ type: 'VehicleReserved', vehicleId, bookingId, at });
}

function decideRelease(command: CommandOf<'ReleaseVehicle'>, state: RegisteredVehicle): Decision<VehicleEvent> {
  const { vehicleId, bookingId, reason, at } = command;
  // Releasing what this booking does not hold is a no-op: compensations may run more than once.
  if (holderOf(state) !== bookingId) return emit();
  // An open car is not handed back: it opened after its booking ended (a late UNLOCKED), and that
  // booking locks it first (LOCK frees it); its compensation is retried meanwhile.
  if (state.status === 'IN_USE') return refuse({ type: 'VehicleUnavailable', vehicleId, status: state.status });
  // An UNLOCK of this booking went unanswered: the car may be open. Handed back only once a LOCK
  // settled it (the booking sends one), or when the booking gave up waiting for the device (force).
  if (!command.force && unsettledUnlock(state, bookingId)) return refuse({ type: 'UnlockOutcomeUnknown', bookingId, vehicleId });
  return emit({ type: 'VehicleReleased', vehicleId, bookingId, reason, at });
}

function decideDeviceCommand(command: CommandOf<'RequestDeviceCommand'>, state: RegisteredVehicle): Decision<VehicleEvent> {
  const { vehicleId, bookingId, commandId, at, expiresAt } = command;
  const holdsVehicle = holderOf(state) === bookingId;
  if (command.command === 'UNLOCK') {
    if (holdsVehicle && state.status === 'IN_USE') return emit(); // already open: answered from state
    if (!holdsVehicle || state.status !== 'RESERVED') return refuse({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId });
    // A LOCK is settling an unanswered UNLOCK: whether the car is open is known once it answers.
    if (state.securing) return refuse({ type: 'UnlockOutcomeUnknown', bookingId, vehicleId });
  } else {
    // Already locked and released (maybe reserved by someone else since): a retried end.
    if (!holdsVehicle && confirmedCommand(state, 'LOCK', bookingId)) return emit();
    // A reserved car is locked only to settle an UNLOCK that went unanswered (it may have opened), and
    // only once that UNLOCK is off the wire: one command per vehicle.
    const securing = holdsVehicle && state.status === 'RESERVED' && unsettledUnlock(state, bookingId) !== undefined && state.unlocking === undefined;
    if (!holdsVehicle || (state.status !== 'IN_USE' && !securing)) return refuse({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId });
  }
  // One command on the wire per vehicle: a concurrent request for the same booking waits for it.
  const pending = pendingCommand(state);
  if (pending && pending.bookingId === bookingId && pending.command === command.command) return emit();
  if (command.online === false) return refuse({ type: 'VehicleOffline', vehicleId, presence: 'offline' });
  // Bookable without presence (fleets without it work), but a command needs someone to hear it: a
  // vehicle no device ever spoke for, and that never confirmed a command, is answered now, not in 5 s.
  if (command.online === null && command.neverSeen && !recentCommandsOf(state).some((issued) => issued.confirmedAt !== null)) {
    return refuse({ type: 'VehicleOffline', vehicleId, presence: 'never-seen' });
  }
  // Checked only when a new LOCK would go out: a retried end of a trip already locked is answered above.
  const cannotEnd = command.command === 'LOCK' && command.areaCheck && endRefusal(vehicleId, state.profile.vehicleType, command.areaCheck, at);
  if (cannotEnd) return refuse(cannotEnd);
  return emit(
    command.command === 'UNLOCK'
      ? { type: 'UnlockRequested', vehicleId, bookingId, commandId, at, expiresAt }
      : { type: 'LockRequested', vehicleId, bookingId, commandId, at, expiresAt },
  );
}

function decideReply(command: CommandOf<'RecordDeviceReply'>, state: RegisteredVehicle): Decision<VehicleEvent> {
  const { vehicleId, commandId, at } = command;
  const issued = findIssued(state, commandId);
  if (!issued) return emit(); // unknown command id: not ours, or long forgotten
  const { bookingId } = issued;
  const heldForIt = holderOf(state) === bookingId;
  switch (command.reply) {
    case 'UNLOCKED': {
      // Late answers count: the car *is* open, so the state must say so (DESIGN).
      if (issued.command !== 'UNLOCK') return emit();
      // Also after its booking released the vehicle (the unlock timed out, then the booking expired or
      // was cancelled): the car stands open, so it is IN_USE under that booking again, which hears of it
      // and locks it. Not over another booking's reservation, and never twice for one command.
      const openedAfterRelease = state.status === 'AVAILABLE' && issued.confirmedAt === null;
      if (!(heldForIt && state.status === 'RESERVED') && !openedAfterRelease) return emit();
      // A LOCK of the booking sent after this UNLOCK and confirmed: the car is shut, the answer is stale.
      if (settledByLock(recentCommandsOf(state), issued)) return emit();
      return emit({ type: 'VehicleUnlocked', vehicleId, bookingId, commandId, at });
    }
    case 'LOCKED':
      if (issued.command !== 'LOCK' || !heldForIt || issued.confirmedAt !== null) return emit();
      if (state.status === 'RESERVED') return emit({ type: 'VehicleSecured', vehicleId, bookingId, commandId, at });
      if (state.status !== 'IN_USE') return emit();
      return emit({ type: 'VehicleLocked', vehicleId, bookingId, commandId, at });
    case 'REJECTED':
      if (pendingCommand(state)?.commandId !== commandId) return emit();
      return emit({ type: 'DeviceRejectedCommand', vehicleId, bookingId, commandId, command: issued.command, reason: command.reason ?? 'unspecified', at });
    default:
      return unreachable(command.reply);
  }
}

function decideFailure(command: CommandOf<'RecordCommandFailure'>, state: RegisteredVehicle): Decision<VehicleEvent> {
  const pending = pendingCommand(state);
  if (!pending || pending.commandId !== command.commandId) return emit();
  const failed = { vehicleId: command.vehicleId, bookingId: pending.bookingId, commandId: pending.commandId, reason: command.reason, at: command.at };
  return emit(pending.command === 'UNLOCK' ? { type: 'UnlockTimedOut', ...failed } : { type: 'LockTimedOut', ...failed });
}

function findIssued(state: VehicleState, commandId: string): IssuedCommand | undefined {
  const pending = pendingCommand(state);
  if (pending?.commandId === commandId) return pending;
  return recentCommandsOf(state).find((issued) => issued.commandId === commandId);
}

// ---- evolve ------------------------------------------------------------------------------------

export function evolve(state: VehicleState, event: VehicleEvent): VehicleState {
  if (event.type === 'VehicleRegistered') {
    const profile = { vehicleType: event.vehicleType, model: event.model, registeredAt: event.at, location: event.location };
    return { status: 'AVAILABLE', profile, recentCommands: recentCommandsOf(state) };
  }
  // The decider refuses everything else to a vehicle that was never registered.
  if (state.status === 'UNREGISTERED') return state;
  const { profile, recentCommands } = state;
  switch (event.type) {
    case 'VehicleReserved':
      return { status: 'RESERVED', profile, recentCommands, bookingId: event.bookingId };
    case 'VehicleReleased':
      return { status: 'AVAILABLE', profile, recentCommands };
    case 'UnlockRequested':
    case 'LockRequested':
      return withRequested(state, issuedBy(event));
    case 'VehicleUnlocked':
      return { status: 'IN_USE', profile, recentCommands: confirm(recentCommands, event.commandId, event.at), bookingId: event.bookingId, unlockedAt: event.at };
    case 'VehicleLocked': {
      const lastRide = state.status === 'IN_USE' ? { lastRide: { unlockedAt: state.unlockedAt, lockedAt: event.at } } : {};
      return { status: 'AVAILABLE', profile, recentCommands: confirm(recentCommands, event.commandId, event.at), ...lastRide };
    }
    case 'VehicleSecured':
      return withoutPending({ ...state, recentCommands: confirm(recentCommands, event.commandId, event.at) });
    case 'UnlockTimedOut':
    case 'LockTimedOut':
      return withoutPending(state);
    case 'DeviceRejectedCommand':
      return withoutPending({ ...state, recentCommands: answered(recentCommands, event.commandId, { refusedAt: event.at }) });
    default:
      return unreachable(event);
  }
}

const issuedBy = (event: Extract<VehicleEvent, { type: 'UnlockRequested' | 'LockRequested' }>): IssuedCommand => ({
  commandId: event.commandId,
  command: event.type === 'UnlockRequested' ? 'UNLOCK' : 'LOCK',
  bookingId: event.bookingId,
  issuedAt: event.at,
  expiresAt: event.expiresAt,
  confirmedAt: null,
});

/** Remembers the command; it waits for the device as the reserved vehicle's UNLOCK or the open one's LOCK (the only ones the decider sends). */
function withRequested(state: RegisteredVehicle, issued: IssuedCommand): RegisteredVehicle {
  const recentCommands = [...state.recentCommands, issued].slice(-REMEMBERED_COMMANDS);
  if (state.status === 'RESERVED') return issued.command === 'UNLOCK' ? { ...state, recentCommands, unlocking: issued } : { ...state, recentCommands, securing: issued };
  if (state.status === 'IN_USE' && issued.command === 'LOCK') return { ...state, recentCommands, locking: issued };
  return { ...state, recentCommands };
}

/** The command that waited for the device failed or was refused: the vehicle stays as it was, waiting for nothing. */
function withoutPending(state: RegisteredVehicle): RegisteredVehicle {
  if (state.status === 'RESERVED') {
    const { unlocking: _failed, securing: _settled, ...reserved }: ReservedVehicle = state;
    return reserved;
  }
  if (state.status === 'IN_USE') {
    const { locking: _failed, ...inUse }: InUseVehicle = state;
    return inUse;
  }
  return state;
}

function confirm(commands: readonly IssuedCommand[], commandId: string, at: number): readonly IssuedCommand[] {
  return answered(commands, commandId, { confirmedAt: at });
}

/** The remembered commands with the device's answer to one of them recorded (applied, or refused). */
function answered(commands: readonly IssuedCommand[], commandId: string, answer: Pick<IssuedCommand, 'confirmedAt'> | Pick<IssuedCommand, 'refusedAt'>): readonly IssuedCommand[] {
  return commands.map((issued) => (issued.commandId === commandId ? { ...issued, ...answer } : issued));
}
