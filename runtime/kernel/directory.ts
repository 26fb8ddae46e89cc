import { dispatch, query, type Ref } from 'nact';
import type { Logger } from '../ground/logger.js';
import type { TraceContext } from '../ground/trace-context.js';
import { Activation, type ActivationHost } from './activation.js';
import { ActorFailed, AskTimeoutError } from './actor-errors.js';
import type { ActorSystem } from './actor-system.js';
import { actorName, type ActorAddress, type ActorBehaviour, type BehaviourFactory, type Message } from './behaviour.js';
import type { Delivery } from './delivery.js';
import { TraceRecorder, type DeliveryObserver, type TraceSink } from './delivery-trace.js';
import { envelope as wrap } from './envelope.js';

export type { ActorAddress, ActorBehaviour, ActorContext, ActorSelf, BehaviourFactory, Message, PendingReply } from './behaviour.js';
export { actorName } from './behaviour.js';
export { ActorFailed, AskTimeoutError, PersistenceFailure } from './actor-errors.js';
export { NotNewAfterAll } from './fresh-proof.js';
export { isSampled, type DeliveryObserver, type TraceSink } from './delivery-trace.js';

/**
 * Virtual actors on top of nact (Orleans style): callers send to a kind + id, the directory activates
 * the actor on its first message (state recovered from snapshot + journal) and passivates it when it
 * has been idle for `passivateAfterMs`.
 *
 * An activation is a compact record (activation.ts) that has a nact actor, with its mailbox, only while
 * messages are in flight and for `releaseAfterMs` after. nact is not a virtual-actor runtime: spawning a name twice throws and a
 * message to a stopped actor is dropped without a word. Both are handled here: activation is
 * synchronous and recorded before the first dispatch (one activation per id however many messages race
 * in), and every send asks the record for its nact actor in the same tick as the dispatch (the record
 * lets a nact actor go only when nothing is in flight, and makes a new one for the next message).
 *
 * Timers are per directory, not per actor. Passivation: idle activations (nothing in flight) are kept
 * in a list in the order they became idle; the timer fires for the oldest and passivates every one
 * idle for `passivateAfterMs`, then waits for the next oldest. Release: the activations that became
 * idle are kept in two generations, and each tick lets go the nact actors of the older one.
 *
 * The rooms: an activation (activation.ts), one message's handling (delivery.ts), the proof that an
 * actor taken for new is new (fresh-proof.ts), what a crash does to the mailbox (recovery.ts), and
 * tracing as an observer of deliveries (delivery-trace.ts).
 */

/** How a new activation for a message starts (DirectoryOptions.startsFresh). */
export type Freshness = boolean | 'checked';

export interface DirectoryOptions {
  readonly system: ActorSystem;
  readonly logger: Logger;
  readonly passivateAfterMs: number;
  /**
   * How long an idle activation keeps its nact actor (mailbox) before it is only a record: the hops of
   * one saga and a burst of messages share one nact actor; an actor idle longer costs its state and a
   * record (default 1 s; let go between this and twice this after its last message).
   */
  readonly releaseAfterMs?: number;
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
   * a retry, never state: see `NotNewAfterAll`; until its first commit proves it new, such an
   * activation handles one message and its answers wait for that commit. `'checked'`: the journal is
   * asked first with one indexed look-up (ActorSystem.holds), and an activation it finds nothing for
   * is new, proven at once, free to answer before it commits (the idempotency claim does).
   */
  readonly startsFresh?: (kind: string, command: Message) => Freshness;
  /**
   * A refusal that is not recorded even though refusals always are: one that tells a stranger "not
   * yours" changed nothing, and recording it would let anyone who knows an id write into that id's
   * traces (the domain knows which refusals those are; the HTTP log still has the request).
   */
  readonly untracedRefusal?: (outcome: unknown) => boolean;
  /**
   * Whether a handler's error means its journal's disk is full: the asker then hears ActorFailed with
   * `storageFull`, and can say so instead of "no answer". The storage adapter knows its own errors.
   */
  readonly isStorageFull?: (error: unknown) => boolean;
}

const noTags = (): string[] => [];
const never = (): boolean => false;

export class ActorDirectory {
  private readonly kinds = new Map<string, BehaviourFactory>();
  private readonly activations = new Map<string, Activation>();
  /** Idle activations, oldest first (linked through the records: no allocation per idle actor). */
  private oldest: Activation | null = null;
  private newest: Activation | null = null;
  private passivation: NodeJS.Timeout | null = null;
  /**
   * Idle activations that may still have a nact actor, in two generations: those that became idle
   * since the last tick, and those of the tick before, which are let go at the next (one timer).
   */
  private warm: Activation[] = [];
  private cooling: Activation[] = [];
  private releasing: NodeJS.Timeout | null = null;
  private readonly releaseAfterMs: number;
  private readonly options: DirectoryOptions;
  private readonly startsFresh: (kind: string, command: Message) => Freshness;
  /** What every activation is given: this directory's sends and settings. */
  private readonly host: ActivationHost;
  private activationCount = 0;
  private passivationCount = 0;
  private stopping = false;

  constructor(options: DirectoryOptions) {
    this.options = options;
    this.startsFresh = options.startsFresh ?? never;
    this.releaseAfterMs = Math.max(1, options.releaseAfterMs ?? 1000);
    const observer: DeliveryObserver | null = options.traces ? new TraceRecorder(options.traces, options.traceSample ?? 1, options.untracedRefusal) : null;
    this.host = {
      system: options.system,
      logger: options.logger,
      snapshotEvery: options.snapshotEvery,
      tagsFor: options.tagsFor ?? noTags,
      isStorageFull: options.isStorageFull ?? never,
      observer,
      tell: (target, command, from, parent) => this.tell(target, command, from, parent),
      ask: (target, command, from, parent, timeoutMs) => this.ask(target, command, from, parent, timeoutMs),
      passivated: (activation) => {
        this.passivationCount += 1;
        this.forget(activation);
      },
      crashed: (activation) => this.forget(activation),
      redeliver: (address, delivery) => this.redeliver(address, delivery),
      idle: (activation) => this.idle(activation),
    };
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
    dispatch(this.mailboxOf(activation), { envelope: wrap(command, from, parent), replyTo: null });
  }

  /** Request-reply with a deadline; rejects with AskTimeoutError when the actor does not answer in time. */
  async ask<T>(target: ActorAddress, command: Message, from: string, parent: TraceContext, timeoutMs = this.options.askTimeoutMs): Promise<T> {
    const activation = this.activate(target, this.startsFresh(target.kind, command));
    const message = wrap(command, from, parent);
    try {
      const answer = await query(this.mailboxOf(activation), (replyTo: Ref<unknown>): Delivery => ({ envelope: message, replyTo }), timeoutMs);
      if (answer instanceof ActorFailed) throw answer;
      return answer as T;
    } catch (error) {
      if (error instanceof Error && error.message === 'Query Timeout') throw new AskTimeoutError(actorName(target), timeoutMs);
      throw error;
    }
  }

  /** `withMailbox`: activations that have a nact actor now (messages in flight); the rest are idle records. */
  stats(): { active: number; withMailbox: number; activations: number; passivations: number; pendingMessages: number; byKind: Record<string, number> } {
    const byKind: Record<string, number> = {};
    let pendingMessages = 0;
    let withMailbox = 0;
    for (const activation of this.activations.values()) {
      byKind[activation.address.kind] = (byKind[activation.address.kind] ?? 0) + 1;
      pendingMessages += activation.pending;
      if (activation.ref) withMailbox += 1;
    }
    return { active: this.activations.size, withMailbox, activations: this.activationCount, passivations: this.passivationCount, pendingMessages, byKind };
  }

  isActive(target: ActorAddress): boolean {
    const activation = this.activations.get(actorName(target));
    return activation !== undefined && !activation.gone;
  }

  /** Stops every activation (their `onStopped` runs); later sends are refused. */
  stopAll(): void {
    this.stopping = true;
    if (this.passivation) clearTimeout(this.passivation);
    if (this.releasing) clearTimeout(this.releasing);
    this.passivation = this.releasing = null;
    this.warm = [];
    this.cooling = [];
    const all = [...this.activations.values()];
    this.activations.clear();
    this.oldest = this.newest = null;
    for (const activation of all) activation.stop();
  }

  /** `fresh`: whether a new activation takes the actor for new and reads no journal (DirectoryOptions.startsFresh). */
  private activate(address: ActorAddress, fresh: Freshness = false): Activation {
    if (this.stopping) throw new Error('actor directory is stopping');
    const name = actorName(address);
    const known = this.activations.get(name);
    if (known && !known.gone) return known;

    const factory = this.kinds.get(address.kind);
    if (!factory) throw new Error(`unknown actor kind ${address.kind}`);
    // 'checked': new only if the journal holds nothing of it, and then proven new before its first commit.
    const taken = fresh === 'checked' ? (this.host.system.holds(name) ? 'no' : 'proven') : fresh ? 'unproven' : 'no';
    const activation = new Activation(this.host, address, factory(address.id), name, taken);
    this.activations.set(name, activation);
    this.activationCount += 1;
    return activation;
  }

  /** The nact actor to hand one more message to, in the tick of the dispatch; the activation is busy until it is handled. */
  private mailboxOf(activation: Activation): Ref<Delivery> {
    const ref = activation.mailbox();
    this.unlinkIdle(activation);
    activation.sent();
    return ref;
  }

  /** Only forget an activation if it is still the one we know: a new one may exist already. */
  private forget(activation: Activation): void {
    this.unlinkIdle(activation);
    if (this.activations.get(activation.name) === activation) this.activations.delete(activation.name);
  }

  private redeliver(address: ActorAddress, delivery: Delivery): void {
    if (this.stopping) return;
    dispatch(this.mailboxOf(this.activate(address)), delivery);
  }

  /** The activation has nothing in flight: it joins the idle list as the newest, and the timer runs. */
  private idle(activation: Activation): void {
    if (activation.gone || this.stopping) return;
    this.unlinkIdle(activation);
    activation.idleSince = Math.floor(performance.now());
    activation.older = this.newest;
    if (this.newest) this.newest.newer = activation;
    else this.oldest = activation;
    this.newest = activation;
    this.passivation ??= this.armPassivation(activation);
    this.warm.push(activation);
    this.releasing ??= this.armRelease();
  }

  private armRelease(): NodeJS.Timeout {
    const timer = setTimeout(() => this.releaseCooled(), this.releaseAfterMs);
    timer.unref();
    return timer;
  }

  /**
   * Lets go the nact actors of activations idle since before the last tick (so for releaseAfterMs at
   * least, unless they were busy and idle again since: then a little early, which costs a spawn only).
   */
  private releaseCooled(): void {
    this.releasing = null;
    const cooled = this.cooling;
    this.cooling = this.warm;
    this.warm = [];
    for (const activation of cooled) activation.release();
    if (this.cooling.length > 0) this.releasing = this.armRelease();
  }

  private unlinkIdle(activation: Activation): void {
    if (activation.older === null && this.oldest !== activation) return;
    const { older, newer } = activation;
    if (older) older.newer = newer;
    else this.oldest = newer;
    if (newer) newer.older = older;
    else this.newest = older;
    activation.older = activation.newer = null;
  }

  /** A timer for when `next` (the oldest idle) has been idle long enough; unref'd, like any idle wait. */
  private armPassivation(next: Activation): NodeJS.Timeout {
    const dueIn = next.idleSince + this.options.passivateAfterMs - performance.now();
    const timer = setTimeout(() => this.passivateIdle(), Math.max(1, Math.ceil(dueIn)));
    timer.unref();
    return timer;
  }

  /** Passivates every activation idle for passivateAfterMs (onStopped runs), oldest first. */
  private passivateIdle(): void {
    this.passivation = null;
    const now = performance.now();
    let next = this.oldest;
    while (next && now - next.idleSince >= this.options.passivateAfterMs) {
      this.unlinkIdle(next);
      if (this.activations.get(next.name) === next) this.activations.delete(next.name);
      next.stop();
      next = this.oldest;
    }
    if (next) this.passivation = this.armPassivation(next);
  }
}
