import type { Logger } from '../ground/logger.js';
import type { TraceContext } from '../ground/trace-context.js';
import type { Envelope } from './envelope.js';

/**
 * What an actor is to the kernel: its address, the behaviour it is given, and the context its command
 * handler works in. The directory (directory.ts) activates behaviours; the domain writes them.
 */

/** Commands and events: a `type` literal plus their fields (object types, not interfaces). */
export type Message = { readonly type: string; readonly [field: string]: unknown };

export interface ActorAddress {
  readonly kind: string;
  readonly id: string;
}

export const actorName = (address: ActorAddress): string => `${address.kind}/${address.id}`;

/** What a behaviour's command handler may do. Side effects only after `persist` resolved. */
export interface ActorContext<State, Event extends Message> {
  readonly id: string;
  /** `<kind>/<id>`, the persistence key and the name in traces. */
  readonly name: string;
  /** Current state, updated by every `persist`. */
  readonly state: State;
  /** The envelope of the message being handled. */
  readonly envelope: Envelope;
  /** This hop's trace context: messages sent from here become its children. */
  readonly trace: TraceContext;
  readonly logger: Logger;
  /** Makes the events durable (one group commit), applies them with `evolve`, returns the new state. */
  persist(...events: Event[]): Promise<State>;
  /** Answers the asker of the current message; a no-op for a fire-and-forget `tell`. */
  reply(value: unknown): void;
  /** Keeps the asker of the current message to answer it later (e.g. when the vehicle replies over MQTT). */
  deferReply(): PendingReply | null;
  tell<Command extends Message>(target: ActorAddress, command: Command): void;
  /** This activation, to keep for messages to itself on behalf of someone else (a device, a timer). */
  readonly self: ActorSelf;
  ask<T, Command extends Message = Message>(target: ActorAddress, command: Command, timeoutMs?: number): Promise<T>;
}

/** An activation as its behaviour may keep it: it lives as long as the behaviour does. */
export interface ActorSelf {
  /** A message to this actor on behalf of someone else (a device, a timer), in the trace it belongs to. */
  tell(command: Message, from: string, trace: TraceContext): void;
}

export interface PendingReply {
  resolve(value: unknown): void;
}

/** One activation of one actor: created on activation, dropped on passivation. */
export interface ActorBehaviour<State, Command extends Message, Event extends Message> {
  readonly initialState: State;
  evolve(state: State, event: Event): State;
  handle(ctx: ActorContext<State, Event>, command: Command): Promise<void> | void;
  /** Once per activation, after recovery, before the first command is handled. */
  onActivated?(ctx: ActorContext<State, Event>): Promise<void> | void;
  /** On passivation or shutdown: release subscriptions and timers. */
  onStopped?(state: State): void;
  /** A JSON-friendly view of the state for traces (defaults to the state itself). */
  describe?(state: State): unknown;
  /**
   * Its deliveries are recorded only when they fail, are slow or refuse, not because their trace was
   * drawn (TRACE_SAMPLE): for bookkeeping on every request's path whose events the journal keeps anyway
   * (the idempotency claim), where a step each would cost as much as the saga's own steps.
   */
  readonly traceOnlyExceptions?: boolean;
  /**
   * What a snapshot stores of the state, and the state a stored one stands for (both default to the
   * state itself): a behaviour whose state changed shape keeps reading the snapshots already on disk.
   */
  readonly toSnapshot?: (state: State) => unknown;
  readonly fromSnapshot?: (data: unknown) => State;
}

export type AnyBehaviour = ActorBehaviour<unknown, Message, Message>;

export type BehaviourFactory = (id: string) => AnyBehaviour;
