import { createRequire } from 'node:module';
import { dispatch, query, spawnPersistent, stop, type Ref } from 'nact';
import type { EventMeta } from './journal.js';
import type { TraceStep } from './trace-step.js';
import type { ActorSystem } from './actor-system.js';
import { type TraceContext } from '../ground/trace-context.js';
import { envelope as wrap, type Envelope } from './envelope.js';
import type { Logger } from '../ground/logger.js';

/**
 * Virtual actors on top of nact (Orleans style): callers send to a kind + id, the directory activates
 * the actor on its first message (state recovered from snapshot + journal) and nact's `shutdownAfter`
 * passivates it when idle.
 *
 * nact is not a virtual-actor runtime: spawning a name twice throws and a message to a stopped actor is
 * dropped without a word. Both are handled here: activation is synchronous and recorded before the
 * first dispatch (one activation per id however many messages race in), and every send first checks
 * that the activation it knows is still alive, in the same tick as the dispatch, so a message can never
 * fall into the gap between nact stopping an idle actor and our hearing of it.
 */

// nact keeps its live actors in this map; `find` is what its own dispatch uses. Its public API has no
// "is this reference alive" call, and nact has not changed since 2022, so reading it here is safe.
const systemMap = createRequire(import.meta.url)('nact/lib/system-map.js') as {
  find(systemName: string, reference: unknown): unknown;
};
const isAlive = (ref: Ref<unknown>): boolean =>
  systemMap.find((ref as unknown as { system: { name: string } }).system.name, ref) !== undefined;

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
  /** A message to this actor on behalf of someone else (a device, a timer), in the trace it belongs to. */
  tellSelf(command: Message, from: string, trace: TraceContext): void;
  ask<T, Command extends Message = Message>(target: ActorAddress, command: Command, timeoutMs?: number): Promise<T>;
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
   * What a snapshot stores of the state, and the state a stored one stands for (both default to the
   * state itself): a behaviour whose state changed shape keeps reading the snapshots already on disk.
   */
  readonly toSnapshot?: (state: State) => unknown;
  readonly fromSnapshot?: (data: unknown) => State;
}

export type BehaviourFactory = (id: string) => ActorBehaviour<unknown, Message, Message>;


/** Where every delivery is recorded (persistence/trace-store.ts). */
export interface TraceSink {
  record(step: TraceStep): void;
}

export class AskTimeoutError extends Error {
  override readonly name = 'AskTimeoutError';
  constructor(readonly actor: string, readonly timeoutMs: number) {
    super(`${actor} did not answer within ${timeoutMs} ms`);
  }
}

export interface DirectoryOptions {
  readonly system: ActorSystem;
  readonly logger: Logger;
  readonly passivateAfterMs: number;
  readonly askTimeoutMs: number;
  readonly snapshotEvery?: number;
  /** Tags for an event as it is journalled (`public` for events that leave the process). */
  readonly tagsFor?: (event: Message) => string[];
  readonly traces?: TraceSink;
  /**
   * Share of traces recorded, 0..1 (TRACE_SAMPLE). The choice follows the trace id, so one request is
   * recorded at every hop or at none; a delivery that failed or was slow is recorded whatever the draw.
   */
  readonly traceSample?: number;
  /**
   * Whether `command` to an actor of `kind` is what creates that actor (a booking's CreateBooking, a
   * payment's Authorize): a new activation for it then skips reading the journal. A wrong guess costs
   * a retry, never state: see `NotNewAfterAll`.
   */
  readonly startsFresh?: (kind: string, command: Message) => boolean;
  /**
   * Whether a handler's error means its journal's disk is full: the asker then hears ActorFailed with
   * `storageFull`, and can say so instead of "no answer". The storage adapter knows its own errors.
   */
  readonly isStorageFull?: (error: unknown) => boolean;
}

/** A delivery slower than this is always recorded: the trace of a slow request is the one wanted. */
const SLOW_DELIVERY_US = 250_000;

/** Deterministic in the trace id (its first 8 hex digits as a fraction), so every shard draws alike. */
export function isSampled(traceId: string, sample: number): boolean {
  if (sample >= 1) return true;
  if (sample <= 0) return false;
  return Number.parseInt(traceId.slice(0, 8), 16) / 0x1_0000_0000 < sample;
}

interface Delivery {
  readonly envelope: Envelope;
  readonly replyTo: Ref<unknown> | null;
}

interface Activation {
  readonly ref: Ref<Delivery>;
  readonly address: ActorAddress;
  /** Messages handed to nact and not yet handled: nact's own mailbox length is not public. */
  pending: number;
}

const noTags = (): string[] => [];
const never = (): boolean => false;

export class ActorDirectory {
  private readonly kinds = new Map<string, BehaviourFactory>();
  private readonly activations = new Map<string, Activation>();
  private readonly options: DirectoryOptions;
  private readonly startsFresh: (kind: string, command: Message) => boolean;
  private activationCount = 0;
  private passivationCount = 0;
  private stopping = false;

  constructor(options: DirectoryOptions) {
    this.options = options;
    this.startsFresh = options.startsFresh ?? never;
  }

  register<State, Command extends Message, Event extends Message>(
    kind: string,
    factory: (id: string) => ActorBehaviour<State, Command, Event>,
  ): void {
    if (this.kinds.has(kind)) throw new Error(`actor kind ${kind} registered twice`);
    this.kinds.set(kind, factory as unknown as BehaviourFactory);
  }

  /** Fire and forget: the actor is activated if needed. */
  tell(target: ActorAddress, command: Message, from: string, parent: TraceContext): void {
    const activation = this.activate(target, this.startsFresh(target.kind, command));
    activation.pending += 1;
    dispatch(activation.ref, { envelope: wrap(command, from, parent), replyTo: null });
  }

  /** Request-reply with a deadline; rejects with AskTimeoutError when the actor does not answer in time. */
  async ask<T>(target: ActorAddress, command: Message, from: string, parent: TraceContext, timeoutMs = this.options.askTimeoutMs): Promise<T> {
    const activation = this.activate(target, this.startsFresh(target.kind, command));
    activation.pending += 1;
    const message = wrap(command, from, parent);
    try {
      const answer = await query(activation.ref, (replyTo: Ref<unknown>) => ({ envelope: message, replyTo }), timeoutMs);
      if (answer instanceof ActorFailed) throw answer;
      return answer as T;
    } catch (error) {
      if (error instanceof Error && error.message === 'Query Timeout') throw new AskTimeoutError(actorName(target), timeoutMs);
      throw error;
    }
  }

  stats(): { active: number; activations: number; passivations: number; pendingMessages: number; byKind: Record<string, number> } {
    const byKind: Record<string, number> = {};
    let pendingMessages = 0;
    for (const activation of this.activations.values()) {
      byKind[activation.address.kind] = (byKind[activation.address.kind] ?? 0) + 1;
      pendingMessages += activation.pending;
    }
    return { active: this.activations.size, activations: this.activationCount, passivations: this.passivationCount, pendingMessages, byKind };
  }

  isActive(target: ActorAddress): boolean {
    const activation = this.activations.get(actorName(target));
    return activation !== undefined && isAlive(activation.ref);
  }

  /** Stops every activation (their `onStopped` runs); later sends are refused. */
  stopAll(): void {
    this.stopping = true;
    for (const activation of this.activations.values()) stop(activation.ref);
    this.activations.clear();
  }

  /** `fresh`: a new activation takes the actor for new and reads no journal (DirectoryOptions.startsFresh). */
  private activate(address: ActorAddress, fresh = false): Activation {
    if (this.stopping) throw new Error('actor directory is stopping');
    const name = actorName(address);
    const known = this.activations.get(name);
    if (known && isAlive(known.ref)) return known;

    const factory = this.kinds.get(address.kind);
    if (!factory) throw new Error(`unknown actor kind ${address.kind}`);
    const activation = this.spawn(address, factory(address.id), name, fresh);
    // After the spawn, which may throw, and before its recovery, which nact starts in a setImmediate.
    if (fresh) this.options.system.expectNew(name);
    this.activations.set(name, activation);
    this.activationCount += 1;
    return activation;
  }

  private spawn(address: ActorAddress, behaviour: ActorBehaviour<unknown, Message, Message>, name: string, fresh: boolean): Activation {
    const { logger, traces, tagsFor = noTags, traceSample = 1 } = this.options;
    // Made on first use, like each message's logger: three activations per booking, most never log.
    let actorLog: Logger | undefined;
    const actorLogger = (): Logger => (actorLog ??= logger.child({ actor: name }));
    let activated = false;
    // An activation that took its actor for new without reading the journal is proven right by its
    // first committed event (the journal refuses a sequence number that exists). Until then it handles
    // its first message only.
    let unproven = fresh;
    let handledOne = false;
    // Set once spawnPersistent returned; messages are only handled after that (nact recovers in a setImmediate).
    // eslint-disable-next-line prefer-const
    let self: Activation;

    const handler = async (state: unknown, message: unknown, nactContext: { recovering?: boolean; persist: (...args: unknown[]) => Promise<void> }) => {
      const current = state === undefined ? behaviour.initialState : state;
      if (nactContext.recovering) return behaviour.evolve(current, message as Message);

      const { envelope, replyTo } = message as Delivery;
      self.pending -= 1;
      const trace: TraceContext = { traceId: envelope.traceId, spanId: envelope.spanId };
      let live = current;
      let replied: unknown;
      let outcome: unknown;
      let messageLogger: Logger | undefined;
      const meta: EventMeta = { traceId: envelope.traceId, spanId: envelope.spanId };
      const context: ActorContext<unknown, Message> = {
        id: address.id,
        name,
        get state() {
          return live;
        },
        envelope,
        trace,
        // Made on first use: most messages log nothing, and a pino child per message showed in profiles.
        get logger() {
          messageLogger ??= actorLogger().child({ traceId: envelope.traceId, message: envelope.type });
          return messageLogger;
        },
        async persist(...events) {
          // Issued in one turn, so the journal commits them in one transaction.
          try {
            await Promise.all(events.map((event) => nactContext.persist(event, tagsFor(event), meta)));
          } catch (cause) {
            throw new PersistenceFailure(`${name} could not persist ${events.map((event) => event.type).join(', ')}`, { cause });
          }
          unproven = false;
          for (const event of events) live = behaviour.evolve(live, event);
          return live;
        },
        reply(value) {
          replied = value;
          if (replyTo) dispatch(replyTo, value);
        },
        deferReply() {
          if (!replyTo) return null;
          return { resolve: (value: unknown) => dispatch(replyTo, value) };
        },
        tell: (target, command) => this.tell(target, command, name, trace),
        tellSelf: (command, from, origin) => this.tell(address, command, from, origin),
        ask: (target, command, timeoutMs) => this.ask(target, command, name, trace, timeoutMs),
      };

      const startedAt = Date.now();
      const started = process.hrtime.bigint();
      const sampled = traces !== undefined && isSampled(envelope.traceId, traceSample);
      const stateBefore = sampled ? describe(behaviour, current) : undefined;
      let failed = false;
      let retried = false;
      try {
        if (unproven && handledOne) throw new NotNewAfterAll(name, envelope.type);
        handledOne = true;
        if (!activated) {
          activated = true;
          await behaviour.onActivated?.(context);
        }
        await behaviour.handle(context, envelope.payload);
        outcome = replied;
      } catch (error) {
        if (unproven && (error instanceof NotNewAfterAll || (error instanceof PersistenceFailure && isDuplicateSequence(error.cause)))) {
          // Not new after all (or not proven new): nothing was answered or done, and onCrash hands the
          // message, with those queued behind it, to an activation that reads the journal.
          retried = true;
          throw error instanceof NotNewAfterAll ? error : new NotNewAfterAll(name, envelope.type, { cause: error });
        }
        // A command handler that throws has a bug or lost its journal: the state it persisted so far is
        // kept, the asker hears at once that it failed (no wait for its timeout), the log says why.
        outcome = { error: error instanceof Error ? error.message : String(error) };
        failed = true;
        context.logger.error({ err: error }, 'command handler failed');
        if (replyTo && replied === undefined) dispatch(replyTo, new ActorFailed(name, envelope.type, this.options.isStorageFull?.(error) ?? false));
        if (error instanceof PersistenceFailure) throw error;
      } finally {
        const durationUs = Number((process.hrtime.bigint() - started) / 1000n);
        if (traces && !retried && (sampled || failed || durationUs >= SLOW_DELIVERY_US || isRejection(outcome))) traces.record({
          traceId: envelope.traceId,
          spanId: envelope.spanId,
          parentSpanId: envelope.parentSpanId,
          fromActor: envelope.from,
          toActor: name,
          messageType: envelope.type,
          payload: envelope.payload,
          stateBefore,
          stateAfter: describe(behaviour, live),
          outcome,
          startedAt,
          durationUs,
        });
      }
      return live;
    };

    // nact types its context without `persist`/`recovering`, which the persistent actor does pass.
    const ref = spawnPersistent(this.options.system.ref, handler as unknown as Parameters<typeof spawnPersistent>[1], name, name.replace('/', '.'), {
      shutdownAfter: this.options.passivateAfterMs,
      snapshotEvery: this.options.snapshotEvery,
      snapshotEncoder: behaviour.toSnapshot,
      snapshotDecoder: behaviour.fromSnapshot,
      afterStop: (state: unknown) => {
        this.passivationCount += 1;
        // Only forget the activation if it is still the one we know: a new one may exist already.
        if (this.activations.get(name) === self) this.activations.delete(name);
        try {
          behaviour.onStopped?.(state === undefined ? behaviour.initialState : state);
        } catch (error) {
          actorLogger().error({ err: error }, 'onStopped failed');
        }
      },
      onCrash: (message: unknown, error: unknown, supervision: { mailbox: Array<{ message: Delivery }>; stop: symbol }) => {
        if (this.activations.get(name) === self) this.activations.delete(name);
        if (error instanceof NotNewAfterAll && isDelivery(message)) {
          actorLogger().debug({ message: message.envelope.type }, 'actor taken for new has a journal: recovering it');
          setImmediate(() => {
            for (const queued of [message, ...supervision.mailbox.map((entry) => entry.message)]) this.redeliver(address, queued);
          });
        } else if (isDelivery(message)) {
          // The journal refused a write: stop this activation so that the next message recovers the
          // actor from what really is durable. Messages still queued go to that next activation.
          actorLogger().error({ err: error }, 'actor stopped after a persistence failure; queued messages go to its next activation');
          setImmediate(() => {
            for (const { message: queued } of supervision.mailbox) this.redeliver(address, queued);
          });
        } else {
          // Recovery itself failed (an event `evolve` cannot apply, a corrupt row): a new activation
          // would fail the same way, so the queued messages are answered, not sent round again.
          actorLogger().error({ err: error }, 'actor could not be recovered from its journal; queued messages fail');
          for (const { message: queued } of supervision.mailbox) {
            if (queued.replyTo) dispatch(queued.replyTo, new ActorFailed(name, queued.envelope.type));
          }
        }
        return supervision.stop;
      },
    } as never);
    self = { ref: ref as Ref<Delivery>, address, pending: 0 };
    return self;
  }

  private redeliver(address: ActorAddress, delivery: Delivery): void {
    if (this.stopping) return;
    const activation = this.activate(address);
    activation.pending += 1;
    dispatch(activation.ref, delivery);
  }
}

/** A reply that refuses (an Outcome with `ok: false`): the traces of refused requests are always kept. */
const isRejection = (outcome: unknown): boolean => typeof outcome === 'object' && outcome !== null && (outcome as { ok?: unknown }).ok === false;

const isDelivery = (message: unknown): message is Delivery =>
  typeof message === 'object' && message !== null && 'envelope' in message && 'replyTo' in message;

function describe(behaviour: ActorBehaviour<unknown, Message, Message>, state: unknown): unknown {
  return behaviour.describe ? behaviour.describe(state) : state;
}

/** The journal refused an event: the activation is stopped and the actor recovers on its next message. */
export class PersistenceFailure extends Error {
  override readonly name = 'PersistenceFailure';
}

/**
 * An activation taken for new (DirectoryOptions.startsFresh) met an actor with a journal: its first
 * event collided with an existing one, or its first message persisted nothing, so it was never proven
 * new. It is stopped before it answers or does anything; the message goes to an activation that reads.
 */
export class NotNewAfterAll extends Error {
  override readonly name = 'NotNewAfterAll';
  constructor(readonly actor: string, readonly messageType: string, options?: { cause?: unknown }) {
    super(`${actor} is not new (${messageType})`, options);
  }
}

/** The journal's own code for a (persistence key, sequence number) that is taken (persistence/journal-engine.ts). */
const isDuplicateSequence = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === 'duplicate-sequence-number';

/** What an asker receives when the actor's handler threw instead of answering. */
export class ActorFailed extends Error {
  override readonly name = 'ActorFailed';
  constructor(
    readonly actor: string,
    readonly messageType: string,
    /** Its journal refused the write for lack of space: the caller can say so instead of "no answer". */
    readonly storageFull = false,
  ) {
    super(`${actor} failed while handling ${messageType}`);
  }
}

