import { randomUUID } from 'node:crypto';
import { persistDecided } from '../shared/persist-decided.js';
import { type Decision } from '../shared/decision.js';
import type { ActorBehaviour, ActorContext, PendingReply } from '../../runtime/kernel/directory.js';
import { rootContext, type TraceContext } from '../../runtime/ground/trace-context.js';
import type { DeviceCommandType, DeviceReplyType, UnsignedDeviceCommand } from '../contract/device-protocol.js';
import { accept, reject, type Outcome, type Rejection } from '../contract/rejections.js';
import type { Location, VehicleType } from '../contract/views.js';
import type { AreaCheck } from './area-rules.js';
import { decide, evolve, type DeviceConditions, type VehicleCommand, type VehicleEvent } from './decider.js';
import { describeVehicle, fromVehicleRecord, toVehicleRecord, type VehicleRecord } from './record.js';
import { confirmedCommand, initialVehicleState, pendingCommand, recentCommandsOf, rideTime, type VehicleState } from './state.js';

/** The vehicle actor's protocol: what other actors, the API and the MQTT router send it. */
export type VehicleMessage =
  | { readonly type: 'RegisterVehicle'; readonly vehicleType: VehicleType; readonly model: string | null; readonly location: Location }
  | { readonly type: 'ReserveVehicle'; readonly bookingId: string }
  /** force: also while an UNLOCK of the booking is unanswered (the booking gave up waiting for the device). */
  | { readonly type: 'ReleaseVehicle'; readonly bookingId: string; readonly reason: string; readonly force?: boolean }
  | { readonly type: 'UnlockVehicle'; readonly bookingId: string }
  /** endOfTrip: a customer ends the ride, so the operating area must allow an end where the vehicle is (a relock, or an operator's end, is never refused for where it stands). */
  | { readonly type: 'LockVehicle'; readonly bookingId: string; readonly endOfTrip?: boolean }
  /** Answered with the state's flat record (record.ts), as replays and traces show it. */
  | { readonly type: 'GetVehicle' }
  | { readonly type: 'DeviceReplied'; readonly commandId: string; readonly reply: DeviceReplyType; readonly reason: string | null; readonly at: number }
    /** online null: an operator cleared the vehicle's presence (DELETE /vehicles/:id/presence); back to the read model. */
  | { readonly type: 'DevicePresence'; readonly online: boolean | null; readonly at: number }
  | { readonly type: 'CommandDeadline'; readonly commandId: string };

export interface Reserved { readonly vehicleType: VehicleType }
export interface Unlocked { readonly unlockedAt: number }
export interface Locked {
  readonly lockedAt: number;
  /** When the ride this LOCK ended had opened; absent when the car was shut already (a LOCK that settled an unanswered UNLOCK). */
  readonly openedAt?: number;
}


/** The vehicle's own MQTT conversation: the actor receives its device's messages while active (DESIGN: it owns them). */
export interface DeviceLink {
  send(vehicleId: string, command: UnsignedDeviceCommand): Promise<void>;
  /** Makes this actor the recipient of its vehicle's replies and presence; the returned function stops it. How the wire carries them is the link's business. */
  watch(vehicleId: string, deliver: (message: Extract<VehicleMessage, { type: 'DeviceReplied' | 'DevicePresence' }>) => void): () => void;
}

export interface VehicleActorDeps {
  readonly device: DeviceLink;
  /** Last known presence and battery from the telemetry read model, for vehicles this actor has not heard yet. */
  readonly conditionsOf: (vehicleId: string) => DeviceConditions;
  /** Whether a device ever spoke for the vehicle: presence (also retained) or telemetry on record. */
  readonly everSeen: (vehicleId: string) => boolean;
  /** Called when the vehicle opened for a booking, also late: the booking learns it is ACTIVE. */
  readonly notifyUnlocked: (ctx: ActorContext<VehicleState, VehicleEvent>, bookingId: string, at: number) => void;
  /** Called when the vehicle locked for a booking, also late: the booking completes the ride. */
  readonly notifyLocked: (ctx: ActorContext<VehicleState, VehicleEvent>, bookingId: string, at: number) => void;
  readonly unlockTimeoutMs: number;
  /** The operating area in force and the vehicle's position (latest telemetry); null or absent: no area, no restriction. */
  readonly areaCheck?: (vehicleId: string) => AreaCheck | null;
  readonly now?: () => number;
}

export const VEHICLE = 'vehicle';

export function vehicleBehaviour(deps: VehicleActorDeps) {
  const now = deps.now ?? Date.now;
  return (vehicleId: string): ActorBehaviour<VehicleState, VehicleMessage, VehicleEvent> => {
    // Per activation, never persisted: who waits for which device command, its deadline timer,
    // the subscription, and presence as this actor heard it.
    const waiters = new Map<string, PendingReply[]>();
    // The trace of the request behind each recent command: the device's answer continues it.
    const commandTraces = new Map<string, TraceContext>();
    let deadline: { commandId: string; timer: NodeJS.Timeout } | null = null;
    let unwatch: (() => void) | null = null;
    let heardOnline: boolean | null = null;

    const conditions = (): DeviceConditions => {
      const known = deps.conditionsOf(vehicleId);
      return heardOnline === null ? known : { ...known, online: heardOnline };
    };

    const armDeadline = (ctx: ActorContext<VehicleState, VehicleEvent>, commandId: string, expiresAt: number) => {
      clearDeadline();
      const self = { kind: VEHICLE, id: vehicleId };
      const timer = setTimeout(() => ctx.tell(self, { type: 'CommandDeadline', commandId }), Math.max(0, expiresAt - now()));
      timer.unref();
      deadline = { commandId, timer };
    };
    const clearDeadline = () => {
      if (deadline) clearTimeout(deadline.timer);
      deadline = null;
    };

    const settle = (commandId: string, outcome: Outcome<unknown>) => {
      for (const waiter of waiters.get(commandId) ?? []) waiter.resolve(outcome);
      waiters.delete(commandId);
      if (deadline?.commandId === commandId) clearDeadline();
    };

    /** Runs the decider, persists what it decided, and returns the events (or the rejection). */
    const run = (ctx: ActorContext<VehicleState, VehicleEvent>, command: VehicleCommand): Promise<Decision<VehicleEvent>> => persistDecided(ctx, decide(command, ctx.state));

    /** Side effects of committed events: answer waiters, tell the booking. */
    const react = (ctx: ActorContext<VehicleState, VehicleEvent>, events: readonly VehicleEvent[]) => {
      for (const event of events) {
        switch (event.type) {
          case 'VehicleUnlocked':
          case 'VehicleLocked':
          case 'VehicleSecured': {
            // Every caller of this booking's UNLOCK (or LOCK) is answered, also those of a retry still
            // in flight when the answer to an earlier command came late: the car is open either way.
            const kind = event.type === 'VehicleUnlocked' ? 'UNLOCK' : 'LOCK';
            const answer = event.type === 'VehicleUnlocked' ? accept({ unlockedAt: event.at }) : accept(lockedAnswer(ctx.state, event));
            for (const issued of recentCommandsOf(ctx.state)) {
              if (issued.command === kind && issued.bookingId === event.bookingId) settle(issued.commandId, answer);
            }
            if (event.type === 'VehicleUnlocked') deps.notifyUnlocked(ctx, event.bookingId, event.at);
            else if (event.type === 'VehicleLocked') deps.notifyLocked(ctx, event.bookingId, event.at);
            break;
          }
          case 'UnlockTimedOut':
          case 'LockTimedOut': {
            const rejection: Rejection =
              event.reason === 'offline'
                ? { type: 'VehicleOffline', vehicleId, presence: 'offline' }
                : { type: event.type, vehicleId, commandId: event.commandId, timeoutMs: deps.unlockTimeoutMs };
            settle(event.commandId, reject(rejection));
            break;
          }
          case 'DeviceRejectedCommand':
            settle(event.commandId, reject({ type: 'VehicleRejectedCommand', vehicleId, command: event.command, reason: event.reason }));
            break;
          case 'VehicleReleased':
            // Released while a command of that booking was still waiting for the device: its callers
            // get an answer now, not at a deadline that no longer applies.
            for (const issued of recentCommandsOf(ctx.state)) {
              if (issued.bookingId === event.bookingId) settle(issued.commandId, reject({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId: event.bookingId }));
            }
            break;
          default:
            break;
        }
      }
    };

    const requestDeviceCommand = async (ctx: ActorContext<VehicleState, VehicleEvent>, command: DeviceCommandType, bookingId: string, endOfTrip = false) => {
      const at = now();
      const areaCheck = endOfTrip ? deps.areaCheck?.(vehicleId) : null;
      const decision = await run(ctx, {
        type: 'RequestDeviceCommand',
        vehicleId,
        command,
        bookingId,
        commandId: randomUUID(),
        online: conditions().online,
        neverSeen: heardOnline === null && !deps.everSeen(vehicleId),
        at,
        expiresAt: at + deps.unlockTimeoutMs,
        ...(areaCheck && { areaCheck }),
      });
      if (!decision.ok) return ctx.reply(reject(decision.rejection));
      const issued = decision.events[0];
      if (!issued) {
        // Nothing new to send: either already done, or the same command is on the wire and we wait for it.
        const state = ctx.state;
        const pending = pendingCommand(state);
        if (pending && pending.bookingId === bookingId) return wait(ctx, pending.commandId);
        const doneAt = confirmedCommand(state, command, bookingId)?.confirmedAt ?? rideTime(state, command) ?? at;
        return ctx.reply(command === 'UNLOCK' ? accept({ unlockedAt: doneAt }) : accept({ lockedAt: doneAt }));
      }
      if (issued.type !== 'UnlockRequested' && issued.type !== 'LockRequested') throw new Error(`unexpected ${issued.type}`);
      wait(ctx, issued.commandId);
      commandTraces.set(issued.commandId, ctx.trace);
      for (const commandId of commandTraces.keys()) {
        if (!recentCommandsOf(ctx.state).some((recent) => recent.commandId === commandId)) commandTraces.delete(commandId);
      }
      armDeadline(ctx, issued.commandId, issued.expiresAt);
      // Durable before it goes out: after a crash the journal knows the command and its deadline.
      deps.device
        .send(vehicleId, {
          commandId: issued.commandId,
          type: command,
          bookingId,
          issuedAt: new Date(issued.at).toISOString(),
          expiresAt: new Date(issued.expiresAt).toISOString(),
        })
        .catch((error: unknown) => ctx.logger.warn({ err: error, commandId: issued.commandId }, 'device command not handed to the broker; the deadline will answer'));
    };

    const wait = (ctx: ActorContext<VehicleState, VehicleEvent>, commandId: string) => {
      const pending = ctx.deferReply();
      if (!pending) return;
      const list = waiters.get(commandId);
      if (list) list.push(pending);
      else waiters.set(commandId, [pending]);
    };

    return {
      initialState: initialVehicleState,
      evolve,
      describe: describeVehicle,
      // Snapshots keep the flat record: those written before the state was a union recover as they are.
      toSnapshot: toVehicleRecord,
      fromSnapshot: (data) => fromVehicleRecord(data as VehicleRecord),

      onActivated(ctx) {
        const device = `device/${vehicleId}`;
        // Only the activation's own tellSelf is kept, not this first message's context.
        const tellSelf = ctx.tellSelf;
        unwatch = deps.device.watch(vehicleId, (message) => {
          const trace = (message.type === 'DeviceReplied' && commandTraces.get(message.commandId)) || rootContext();
          tellSelf(message, device, trace);
        });
        // A command issued before a restart or passivation still gets its deadline.
        const pending = pendingCommand(ctx.state);
        if (pending) armDeadline(ctx, pending.commandId, pending.expiresAt);
      },

      onStopped() {
        clearDeadline();
        unwatch?.();
      },

      async handle(ctx, message) {
        const at = now();
        switch (message.type) {
          case 'GetVehicle':
            return ctx.reply(toVehicleRecord(ctx.state));
          case 'RegisterVehicle': {
            const decision = await run(ctx, { type: 'RegisterVehicle', vehicleId, vehicleType: message.vehicleType, model: message.model, location: message.location, at });
            return ctx.reply(decision.ok ? accept({ vehicleId }) : reject(decision.rejection));
          }
          case 'ReserveVehicle': {
            const areaCheck = deps.areaCheck?.(vehicleId);
            const decision = await run(ctx, { type: 'ReserveVehicle', vehicleId, bookingId: message.bookingId, conditions: conditions(), at, ...(areaCheck && { areaCheck }) });
            if (!decision.ok) return ctx.reply(reject(decision.rejection));
            // A reserve the decider accepted found the vehicle registered.
            const state = ctx.state;
            return ctx.reply(state.status === 'UNREGISTERED' ? reject({ type: 'VehicleNotFound', vehicleId }) : accept({ vehicleType: state.profile.vehicleType }));
          }
          case 'ReleaseVehicle': {
            const decision = await run(ctx, { type: 'ReleaseVehicle', vehicleId, bookingId: message.bookingId, reason: message.reason, at, force: message.force === true });
            if (decision.ok) react(ctx, decision.events);
            return ctx.reply(decision.ok ? accept(null) : reject(decision.rejection));
          }
          case 'UnlockVehicle':
            return requestDeviceCommand(ctx, 'UNLOCK', message.bookingId);
          case 'LockVehicle':
            return requestDeviceCommand(ctx, 'LOCK', message.bookingId, message.endOfTrip === true);
          case 'DeviceReplied': {
            const decision = await run(ctx, { type: 'RecordDeviceReply', vehicleId, commandId: message.commandId, reply: message.reply, reason: message.reason, at: message.at });
            if (decision.ok && decision.events.length === 0) {
              ctx.logger.info({ commandId: message.commandId, reply: message.reply }, 'device reply ignored: unknown command or already applied');
            }
            if (decision.ok) react(ctx, decision.events);
            return;
          }
          case 'DevicePresence': {
            heardOnline = message.online;
            const pending = pendingCommand(ctx.state);
            // An offline vehicle will not answer: fail the waiting caller now instead of at the deadline.
            if (message.online === false && pending) {
              const decision = await run(ctx, { type: 'RecordCommandFailure', vehicleId, commandId: pending.commandId, reason: 'offline', at });
              if (decision.ok) react(ctx, decision.events);
            }
            return;
          }
          case 'CommandDeadline': {
            const decision = await run(ctx, { type: 'RecordCommandFailure', vehicleId, commandId: message.commandId, reason: 'timeout', at });
            if (decision.ok) react(ctx, decision.events);
            return;
          }
          default: {
            const unknown: never = message;
            ctx.logger.warn({ message: unknown }, 'unknown vehicle message dropped');
          }
        }
      },
    };
  };
}

/** What a LOCK answers: when, and for a ride it ended, when that ride opened (the vehicle's record of it). */
function lockedAnswer(state: VehicleState, event: Extract<VehicleEvent, { type: 'VehicleLocked' | 'VehicleSecured' }>): Locked {
  const openedAt = event.type === 'VehicleLocked' ? rideTime(state, 'UNLOCK') : undefined;
  return openedAt === undefined ? { lockedAt: event.at } : { lockedAt: event.at, openedAt };
}
