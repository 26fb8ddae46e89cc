import { createRequire } from 'node:module';
import { spawnPersistent, stop, type Ref } from 'nact';
import type { Logger } from '../ground/logger.js';
import type { TraceContext } from '../ground/trace-context.js';
import type { ActorSystem } from './actor-system.js';
import type { ActorAddress, ActorSelf, AnyBehaviour, Message } from './behaviour.js';
import { deliver, type ActivatedActor, type Delivery, type DeliveryHost, type NactPersist } from './delivery.js';
import { FreshProof } from './fresh-proof.js';
import { recoverFromCrash, type Supervision } from './recovery.js';

/**
 * One activation of one actor: a compact record that lives from the actor's first message until it
 * passivates, and a persistent nact actor (with its mailbox) that exists only while the record has
 * messages in flight, and a short while after. The first nact actor recovers the state from snapshot +
 * journal; once the activation has been idle for a while (the directory's `releaseAfterMs`) the record
 * keeps what it recovered and handled (state, sequence number, the count to the next snapshot) and the
 * nact actor is stopped; the next message gets a new nact actor that resumes from the record without
 * reading the journal (ActorSystem.resume). To the behaviour and to callers that is
 * one activation: `onActivated` once, one state, messages one at a time in arrival order (one nact
 * mailbox at any time). The directory decides when to make one and when it passivates (directory.ts).
 */

/** The few fields of nact's PersistentActor that carry an actor's recovery from one nact actor to the next. */
interface NactActor {
  readonly state: unknown;
  readonly sequenceNumber: number;
  messagesToNextSnapshot: number;
}

// nact keeps its live actors in this map; `find` is what its own dispatch uses. Its public API has no
// "the actor behind this reference" call, and nact has not changed since 2022, so reading it (and the
// three PersistentActor fields above) here is safe; directory.test.ts proves the carry-over.
const systemMap = createRequire(import.meta.url)('nact/lib/system-map.js') as {
  find(systemName: string, reference: unknown): unknown;
};
/** The nact actor behind a reference, undefined once it stopped. */
const concrete = (ref: Ref<unknown>): unknown => systemMap.find((ref as unknown as { system: { name: string } }).system.name, ref);

/** What an activation needs of its directory, besides what its deliveries need. */
export interface ActivationHost extends DeliveryHost {
  readonly system: ActorSystem;
  readonly logger: Logger;
  readonly snapshotEvery: number | undefined;
  /** The activation stopped for good (passivated, crashed, or stopped with the directory). */
  passivated(activation: Activation): void;
  /** The activation crashed: it is stopped and its messages go on (recovery.ts). */
  crashed(activation: Activation): void;
  redeliver(address: ActorAddress, delivery: Delivery): void;
  /** The activation has nothing in flight: from now it counts as idle (its passivation clock runs). */
  idle(activation: Activation): void;
}

const identity = (value: unknown): unknown => value;

/**
 * The record. Its methods are on the prototype and its per-message work is in delivery.ts, so an idle
 * activation costs this object, its state and its map entry: no closure, no timer, no nact actor.
 */
export class Activation implements ActivatedActor, ActorSelf {
  /** Messages handed to nact whose handling has not started: nact's own mailbox length is not public. */
  pending = 0;
  /** Messages handed to nact whose handling has not ended; at 0 the activation is idle (the directory lets its nact actor go later). */
  inFlight = 0;
  /** Whether `onActivated` ran. */
  activated = false;
  /** Stopped for good: passivated, crashed or stopped with the directory. */
  gone = false;
  /** The nact actor while messages are in flight (and a while after the last one: DirectoryOptions.releaseAfterMs), else null. */
  ref: Ref<Delivery> | null = null;
  /** What the last nact actor ended with; `recovered` says whether there was one. */
  private recovered = false;
  private state: unknown = undefined;
  private sequenceNumber = 0;
  private toNextSnapshot = 0;
  /** The directory's idle list (oldest first) and when this one became idle (ms, performance.now()). */
  idleSince = 0;
  newer: Activation | null = null;
  older: Activation | null = null;
  readonly proof: FreshProof | null;
  /** Its first recovery reads no journal: taken for new, proven or not. */
  private readonly expectsNew: boolean;
  private actorLog: Logger | undefined = undefined;

  constructor(
    private readonly host: ActivationHost,
    readonly address: ActorAddress,
    readonly behaviour: AnyBehaviour,
    readonly name: string,
    fresh: 'no' | 'unproven' | 'proven',
  ) {
    // Only an activation taken for new without a look-up has something to prove (fresh-proof.ts).
    this.proof = fresh === 'unproven' ? new FreshProof(true) : null;
    this.expectsNew = fresh !== 'no';
  }

  /** Made on first use, like each message's logger: three activations per booking, most never log. */
  logger(): Logger {
    return (this.actorLog ??= this.host.logger.child({ actor: this.name }));
  }

  /** ActorSelf: a message to this actor, through the directory (which gives it a nact actor if needed). */
  tell(command: Message, from: string, origin: TraceContext): void {
    this.host.tell(this.address, command, from, origin);
  }

  /** The nact actor to hand a message to: the one in flight, or a new one that recovers (the first) or resumes. */
  mailbox(): Ref<Delivery> {
    if (this.ref) return this.ref;
    const fresh = !this.recovered && this.expectsNew;
    const ref = this.spawn();
    // After the spawn, which may throw, and before its recovery, which nact starts in a setImmediate.
    if (this.recovered) {
      this.host.system.resume(this.name, this.state, this.sequenceNumber);
    } else {
      this.host.system.recoverFromJournal(this.name);
      if (fresh) this.host.system.expectNew(this.name);
    }
    this.state = undefined;
    this.ref = ref;
    return ref;
  }

  /** A message was handed to the nact actor. */
  sent(): void {
    this.pending += 1;
    this.inFlight += 1;
  }

  /** Stops for good: the nact actor if there is one (its afterStop runs onStopped), else onStopped here. */
  stop(): void {
    this.gone = true;
    if (this.ref) return stop(this.ref);
    this.host.passivated(this);
    this.stopped(this.state);
  }

  private stopped(state: unknown): void {
    try {
      this.behaviour.onStopped?.(state === undefined ? this.behaviour.initialState : state);
    } catch (error) {
      this.logger().error({ err: error }, 'onStopped failed');
    }
  }

  private spawn(): Ref<Delivery> {
    const { behaviour, host } = this;
    const resuming = this.recovered;
    // Read by the first message this nact actor handles: a resumed one goes on counting to its snapshot.
    let carry: number | null = resuming ? this.toNextSnapshot : null;
    // eslint-disable-next-line prefer-const -- set once spawnPersistent returned; nact handles messages only after that
    let ref: Ref<Delivery>;
    const handler = (state: unknown, message: unknown, nactContext: { recovering?: boolean; persist: NactPersist }): unknown => {
      const current = state === undefined ? behaviour.initialState : state;
      if (nactContext.recovering) return behaviour.evolve(current, message as Message);
      if (carry !== null) {
        (concrete(ref) as NactActor).messagesToNextSnapshot = carry;
        carry = null;
      }
      this.pending -= 1;
      return deliver(host, this, current, message as Delivery, nactContext.persist).finally(() => this.settled());
    };
    // nact types its context without `persist`/`recovering`, which the persistent actor does pass.
    ref = spawnPersistent(host.system.ref, handler as unknown as Parameters<typeof spawnPersistent>[1], this.name, this.name.replace('/', '.'), {
      snapshotEvery: host.snapshotEvery,
      snapshotEncoder: behaviour.toSnapshot,
      // A resumed actor's "snapshot" is the state itself (ActorSystem.resume), already decoded.
      snapshotDecoder: resuming ? identity : behaviour.fromSnapshot,
      afterStop: (state: unknown) => {
        // A nact actor let go while idle: the activation lives on in this record.
        if (!this.gone) return;
        host.passivated(this);
        this.stopped(state);
      },
      onCrash: (message: unknown, error: unknown, supervision: Supervision) => {
        this.gone = true;
        host.crashed(this);
        return recoverFromCrash(this, message, error, supervision, (to, delivery) => host.redeliver(to, delivery));
      },
    } as never) as Ref<Delivery>;
    return ref;
  }

  /** One message handled: with the last one in flight, the activation is idle (the directory decides when its nact actor goes). */
  private settled(): void {
    this.inFlight -= 1;
    if (this.inFlight === 0) this.host.idle(this);
  }

  /**
   * Lets the nact actor go if nothing is in flight: the record keeps what it recovered and handled.
   * Called by the directory a while after the activation became idle, never while nact handles a
   * message (`inFlight` counts from the dispatch until the handler's promise settled).
   */
  release(): void {
    const { ref } = this;
    if (this.gone || !ref || this.inFlight > 0) return;
    const actor = concrete(ref) as NactActor | undefined;
    // Already stopped (a crash is on its way through onCrash): nothing to keep.
    if (!actor) return;
    this.state = actor.state;
    this.sequenceNumber = actor.sequenceNumber;
    this.toNextSnapshot = actor.messagesToNextSnapshot;
    this.recovered = true;
    this.ref = null;
    stop(ref);
  }
}
