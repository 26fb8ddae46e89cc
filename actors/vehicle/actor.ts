import { randomUUID } from 'node:crypto';
import { persistDecided } from '../shared/persist-decided.js';
import { type Decision } from '../shared/decision.js';
import type { ActorBehaviour, ActorContext, ActorSelf, PendingReply } from '../../runtime/kernel/directory.js';
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
  /**
   * Makes `recipient` (the vehicle's active actor) the recipient of its vehicle's replies and presence,
   * until `unwatch` with the same recipient. How the wire carries them is the link's business.
   */
  watch(vehicleId: string, recipient: DeviceRecipient): void;
  unwatch(vehicleId: string, recipient: DeviceRecipient): void;
}

export type DeviceMessage = Extract<VehicleMessage, { type: 'DeviceReplied' | 'DevicePresence' }>;

/** An object, not a callback: the link keeps the activation itself, no closure per vehicle. */
export interface DeviceRecipient {
  fromDevice(message: DeviceMessage): void;
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

type VehicleContext = ActorContext<VehicleState, VehicleEvent>;

export function vehicleBehaviour(deps: VehicleActorDeps): (vehicleId: string) => ActorBehaviour<VehicleState, VehicleMessage, VehicleEvent> {
  const kind: VehicleKind = { deps, now: deps.now ?? Date.now };
  return (vehicleId) => new VehicleActivation(kind, vehicleId);
}

/** What every vehicle activation of one shard shares: one object, not closures per activation. */
interface VehicleKind {
  readonly deps: VehicleActorDeps;
  readonly now: () => number;
}

/**
 * One activation of one vehicle. A class so that an idle active vehicle costs its fields, not a set
 * of closures: its methods are shared, its maps are made on first use and dropped when empty.
 * Per activation, never persisted: who waits for which device command, its deadline timer, the device
 * subscription, and presence as this actor heard it.
 */
class VehicleActivation implements ActorBehaviour<VehicleState, VehicleMessage, VehicleEvent>, DeviceRecipient {
  /** Who waits for which device command (null: nobody). */
  private waiters: Map<string, PendingReply[]> | null = null;
  /** The trace of the request behind each recent command: the device's answer continues it (null: none). */
  private commandTraces: Map<string, TraceContext> | null = null;
  private deadline: { commandId: string; timer: NodeJS.Timeout } | null = null;
  /** This activation, once it watches its device: the device's messages are told to it. */
  private self: ActorSelf | null = null;
  private heardOnline: boolean | null = null;

  constructor(
    private readonly kind: VehicleKind,
    private readonly vehicleId: string,
  ) {}

  get initialState(): VehicleState {
    return initialVehicleState;
  }

  evolve(state: VehicleState, event: VehicleEvent): VehicleState {
    return evolve(state, event);
  }

  describe(state: VehicleState): unknown {
    return describeVehicle(state);
  }

  // Snapshots keep the flat record: those written before the state was a union recover as they are.
  toSnapshot(state: VehicleState): unknown {
    return toVehicleRecord(state);
  }

  fromSnapshot(data: unknown): VehicleState {
    return fromVehicleRecord(data as VehicleRecord);
  }

  onActivated(ctx: VehicleContext): void {
    this.self = ctx.self;
    this.kind.deps.device.watch(this.vehicleId, this);
    // A command issued before a restart or passivation still gets its deadline.
    const pending = pendingCommand(ctx.state);
    if (pending) this.armDeadline(ctx, pending.commandId, pending.expiresAt);
  }

  onStopped(): void {
    this.clearDeadline();
    if (this.self) this.kind.deps.device.unwatch(this.vehicleId, this);
  }

  /** DeviceRecipient: the device's message goes through this actor's mailbox, in the trace of its command. */
  fromDevice(message: DeviceMessage): void {
    const trace = (message.type === 'DeviceReplied' && this.commandTraces?.get(message.commandId)) || rootContext();
    this.self?.tell(message, `device/${this.vehicleId}`, trace);
  }

  async handle(ctx: VehicleContext, message: VehicleMessage): Promise<void> {
    const { vehicleId } = this;
    const at = this.kind.now();
    switch (message.type) {
      case 'GetVehicle':
        return ctx.reply(toVehicleRecord(ctx.state));
      case 'RegisterVehicle': {
        const decision = await this.run(ctx, { type: 'RegisterVehicle', vehicleId, vehicleType: message.vehicleType, model: message.model, location: message.location, at });
        return ctx.reply(decision.ok ? accept({ vehicleId }) : reject(decision.rejection));
      }
      case 'ReserveVehicle': {
        const areaCheck = this.kind.deps.areaCheck?.(vehicleId);
        const decision = await this.run(ctx, { type: 'ReserveVehicle', vehicleId, bookingId: message.bookingId, conditions: this.conditions(), at, ...(areaCheck && { areaCheck }) });
        if (!decision.ok) return ctx.reply(reject(decision.rejection));
        // A reserve the decider accepted found the vehicle registered.
        const state = ctx.state;
        return ctx.reply(state.status === 'UNREGISTERED' ? reject({ type: 'VehicleNotFound', vehicleId }) : accept({ vehicleType: state.profile.vehicleType }));
      }
      case 'ReleaseVehicle': {
        const decision = await this.run(ctx, { type: 'ReleaseVehicle', vehicleId, bookingId: message.bookingId, reason: message.reason, at, force: message.force === true });
        if (decision.ok) this.react(ctx, decision.events);
        return ctx.reply(decision.ok ? accept(null) : reject(decision.rejection));
      }
      case 'UnlockVehicle':
        return this.requestDeviceCommand(ctx, 'UNLOCK', message.bookingId);
      case 'LockVehicle':
        return this.requestDeviceCommand(ctx, 'LOCK', message.bookingId, message.endOfTrip === true);
      case 'DeviceReplied': {
        const decided = decide({ type: 'RecordDeviceReply', vehicleId, commandId: message.commandId, reply: message.reply, reason: message.reason, at: message.at }, ctx.state);
        const persisted = persistDecided(ctx, decided);
        // Queued, not yet durable: the UNLOCK's askers hear it in this turn, so that their own events
        // join this commit (see answerOpenedInThisCommit).
        if (decided.ok) this.answerOpenedInThisCommit(ctx.state, decided.events);
        const decision = await persisted;
        if (decision.ok && decision.events.length === 0) {
          ctx.logger.info({ commandId: message.commandId, reply: message.reply }, 'device reply ignored: unknown command or already applied');
        }
        if (decision.ok) this.react(ctx, decision.events);
        return;
      }
      case 'DevicePresence': {
        this.heardOnline = message.online;
        const pending = pendingCommand(ctx.state);
        // An offline vehicle will not answer: fail the waiting caller now instead of at the deadline.
        if (message.online === false && pending) {
          const decision = await this.run(ctx, { type: 'RecordCommandFailure', vehicleId, commandId: pending.commandId, reason: 'offline', at });
          if (decision.ok) this.react(ctx, decision.events);
        }
        return;
      }
      case 'CommandDeadline': {
        const decision = await this.run(ctx, { type: 'RecordCommandFailure', vehicleId, commandId: message.commandId, reason: 'timeout', at });
        if (decision.ok) this.react(ctx, decision.events);
        return;
      }
      default: {
        const unknown: never = message;
        ctx.logger.warn({ message: unknown }, 'unknown vehicle message dropped');
      }
    }
  }

  private conditions(): DeviceConditions {
    const known = this.kind.deps.conditionsOf(this.vehicleId);
    return this.heardOnline === null ? known : { ...known, online: this.heardOnline };
  }

  /** The deadline is this actor's own message, in the trace of the message that armed it (the timer keeps its name and trace, not its context). */
  private armDeadline(ctx: VehicleContext, commandId: string, expiresAt: number): void {
    this.clearDeadline();
    const { self } = this;
    const { name, trace } = ctx;
    const timer = setTimeout(() => self?.tell({ type: 'CommandDeadline', commandId }, name, trace), Math.max(0, expiresAt - this.kind.now()));
    timer.unref();
    this.deadline = { commandId, timer };
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline.timer);
    this.deadline = null;
  }

  private settle(commandId: string, outcome: Outcome<unknown>): void {
    for (const waiter of this.waiters?.get(commandId) ?? []) waiter.resolve(outcome);
    this.waiters?.delete(commandId);
    if (this.waiters?.size === 0) this.waiters = null;
    if (this.deadline?.commandId === commandId) this.clearDeadline();
  }

  /** Runs the decider, persists what it decided, and returns the events (or the rejection). */
  private run(ctx: VehicleContext, command: VehicleCommand): Promise<Decision<VehicleEvent>> {
    return persistDecided(ctx, decide(command, ctx.state));
  }

  /**
   * The UNLOCK's askers are answered when its VehicleUnlocked is queued for the journal, before it is
   * durable: one sequential commit fewer per unlock (docs/architecture.md, "Crash points of an
   * unlock"). Safe because of who asks and what the journal guarantees. Every asker of an UNLOCK is a
   * booking (its Unlock and FoundOpen steps), which answers by persisting BookingActivated and replies
   * to its caller only after that commit. The answer reaches it through promises only, so its persist
   * is issued in this same turn, and the journal commits every persist of one turn in one transaction
   * (group commit): VehicleUnlocked and BookingActivated are durable together or not at all, and the
   * 200 follows their commit. A commit that fails fails both: the booking's caller gets the failure,
   * and the vehicle recovers with its UNLOCK unanswered, which it never hands back unsettled (state.ts
   * `unsettledUnlock`). `test/integration/unlock-commits.test.ts` checks the shared commit.
   * LOCK keeps answering after its commit: some of its askers act on the answer without persisting.
   */
  private answerOpenedInThisCommit(before: VehicleState, events: readonly VehicleEvent[]): void {
    for (const event of events) {
      if (event.type !== 'VehicleUnlocked') continue;
      const answer = accept({ unlockedAt: event.at });
      for (const issued of recentCommandsOf(before)) {
        if (issued.command === 'UNLOCK' && issued.bookingId === event.bookingId) this.settle(issued.commandId, answer);
      }
    }
  }

  /** Side effects of committed events: answer waiters (those not answered already), tell the booking. */
  private react(ctx: VehicleContext, events: readonly VehicleEvent[]): void {
    const { vehicleId } = this;
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
            if (issued.command === kind && issued.bookingId === event.bookingId) this.settle(issued.commandId, answer);
          }
          if (event.type === 'VehicleUnlocked') this.kind.deps.notifyUnlocked(ctx, event.bookingId, event.at);
          else if (event.type === 'VehicleLocked') this.kind.deps.notifyLocked(ctx, event.bookingId, event.at);
          break;
        }
        case 'UnlockTimedOut':
        case 'LockTimedOut': {
          const rejection: Rejection =
            event.reason === 'offline'
              ? { type: 'VehicleOffline', vehicleId, presence: 'offline' }
              : { type: event.type, vehicleId, commandId: event.commandId, timeoutMs: this.kind.deps.unlockTimeoutMs };
          this.settle(event.commandId, reject(rejection));
          break;
        }
        case 'DeviceRejectedCommand':
          this.settle(event.commandId, reject({ type: 'VehicleRejectedCommand', vehicleId, command: event.command, reason: event.reason }));
          break;
        case 'VehicleReleased':
          // Released while a command of that booking was still waiting for the device: its callers
          // get an answer now, not at a deadline that no longer applies.
          for (const issued of recentCommandsOf(ctx.state)) {
            if (issued.bookingId === event.bookingId) this.settle(issued.commandId, reject({ type: 'VehicleNotReservedForBooking', vehicleId, bookingId: event.bookingId }));
          }
          break;
        default:
          break;
      }
    }
  }

  private async requestDeviceCommand(ctx: VehicleContext, command: DeviceCommandType, bookingId: string, endOfTrip = false): Promise<void> {
    const { vehicleId, kind } = this;
    const { deps } = kind;
    const at = kind.now();
    const areaCheck = endOfTrip ? deps.areaCheck?.(vehicleId) : null;
    const decision = await this.run(ctx, {
      type: 'RequestDeviceCommand',
      vehicleId,
      command,
      bookingId,
      commandId: randomUUID(),
      online: this.conditions().online,
      neverSeen: this.heardOnline === null && !deps.everSeen(vehicleId),
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
      if (pending && pending.bookingId === bookingId) return this.wait(ctx, pending.commandId);
      const doneAt = confirmedCommand(state, command, bookingId)?.confirmedAt ?? rideTime(state, command) ?? at;
      return ctx.reply(command === 'UNLOCK' ? accept({ unlockedAt: doneAt }) : accept({ lockedAt: doneAt }));
    }
    if (issued.type !== 'UnlockRequested' && issued.type !== 'LockRequested') throw new Error(`unexpected ${issued.type}`);
    this.wait(ctx, issued.commandId);
    this.traceCommand(ctx, issued.commandId);
    this.armDeadline(ctx, issued.commandId, issued.expiresAt);
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
  }

  /** Keeps the command's trace while it is among the state's recent commands (older ones are dropped). */
  private traceCommand(ctx: VehicleContext, commandId: string): void {
    const traces = (this.commandTraces ??= new Map());
    traces.set(commandId, ctx.trace);
    for (const known of traces.keys()) {
      if (!recentCommandsOf(ctx.state).some((recent) => recent.commandId === known)) traces.delete(known);
    }
  }

  private wait(ctx: VehicleContext, commandId: string): void {
    const pending = ctx.deferReply();
    if (!pending) return;
    const waiters = (this.waiters ??= new Map());
    const list = waiters.get(commandId);
    if (list) list.push(pending);
    else waiters.set(commandId, [pending]);
  }
}

/** What a LOCK answers: when, and for a ride it ended, when that ride opened (the vehicle's record of it). */
function lockedAnswer(state: VehicleState, event: Extract<VehicleEvent, { type: 'VehicleLocked' | 'VehicleSecured' }>): Locked {
  const openedAt = event.type === 'VehicleLocked' ? rideTime(state, 'UNLOCK') : undefined;
  return openedAt === undefined ? { lockedAt: event.at } : { lockedAt: event.at, openedAt };
}
