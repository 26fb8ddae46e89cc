import { dispatch, type Ref } from 'nact';
import type { Logger } from '../ground/logger.js';
import type { TraceContext } from '../ground/trace-context.js';
import { ActorFailed, PersistenceFailure } from './actor-errors.js';
import type { ActorAddress, ActorContext, ActorSelf, AnyBehaviour, Message } from './behaviour.js';
import type { DeliveryObserver } from './delivery-trace.js';
import type { Envelope } from './envelope.js';
import type { FreshProof } from './fresh-proof.js';
import type { EventMeta } from './journal.js';

/**
 * One message handled by one activation: the context its handler works in, the handler run, and what
 * the asker hears when the handler throws. The directory's sends and the trace observer are given.
 */

/** What travels in an actor's nact mailbox. */
export interface Delivery {
  readonly envelope: Envelope;
  readonly replyTo: Ref<unknown> | null;
}

export const isDelivery = (message: unknown): message is Delivery =>
  typeof message === 'object' && message !== null && 'envelope' in message && 'replyTo' in message;

/** nact's `persist` on a persistent actor's context (its typings leave it out). */
export type NactPersist = (event: Message, tags: string[], meta: EventMeta) => Promise<void>;

/** What a delivery needs of its directory. */
export interface DeliveryHost {
  tell(target: ActorAddress, command: Message, from: string, parent: TraceContext): void;
  ask<T>(target: ActorAddress, command: Message, from: string, parent: TraceContext, timeoutMs?: number): Promise<T>;
  readonly tagsFor: (event: Message) => string[];
  readonly isStorageFull: (error: unknown) => boolean;
  readonly observer: DeliveryObserver | null;
}

/**
 * One activation as its deliveries see it (activation.ts makes it). It is also the handler's `self`:
 * an actor that keeps it (a device subscription) keeps the activation, not a message's context.
 */
export interface ActivatedActor extends ActorSelf {
  readonly address: ActorAddress;
  readonly name: string;
  readonly behaviour: AnyBehaviour;
  /** Only for an activation taken for new (fresh-proof.ts). */
  readonly proof: FreshProof | null;
  /** Whether `onActivated` ran. */
  activated: boolean;
  /** The actor's logger, made on first use. */
  logger(): Logger;
}

/** What the handler of one message did: its latest state and its reply. */
interface Run {
  live: unknown;
  replied: unknown;
  /** A reply given before the activation was proven new (fresh-proof.ts): sent once it is. */
  held: (() => void) | undefined;
}

/** Sends the reply held back until the activation was proven new, once. */
function sendHeldReply(run: Run): void {
  const held = run.held;
  run.held = undefined;
  held?.();
}

/** Handles one message; resolves to the state after it (nact keeps it as the actor's state). */
export async function deliver(host: DeliveryHost, actor: ActivatedActor, current: unknown, delivery: Delivery, persist: NactPersist): Promise<unknown> {
  const { envelope, replyTo } = delivery;
  const run: Run = { live: current, replied: undefined, held: undefined };
  const context = messageContext(host, actor, run, delivery, persist);
  const { observer } = host;
  const watch = observer?.started(envelope, actor.behaviour, current);
  let outcome: unknown;
  let failed = false;
  let handedOn = false;
  try {
    actor.proof?.admit(actor.name, envelope.type);
    if (!actor.activated) {
      actor.activated = true;
      await actor.behaviour.onActivated?.(context);
    }
    await actor.behaviour.handle(context, envelope.payload);
    // Answered without a commit to prove it new (a first message that persisted nothing): as before.
    sendHeldReply(run);
    outcome = run.replied;
  } catch (error) {
    const notNew = actor.proof?.refutedBy(error, actor.name, envelope.type) ?? null;
    if (notNew) {
      // Nothing was answered or done, and onCrash (recovery.ts) hands the message, with those queued
      // behind it, to an activation that reads the journal.
      handedOn = true;
      throw notNew;
    }
    // A command handler that throws has a bug or lost its journal: the state it persisted so far is
    // kept, the asker hears at once that it failed (no wait for its timeout), the log says why.
    outcome = { error: error instanceof Error ? error.message : String(error) };
    failed = true;
    context.logger.error({ err: error }, 'command handler failed');
    if (replyTo && (run.replied === undefined || run.held !== undefined)) dispatch(replyTo, new ActorFailed(actor.name, envelope.type, host.isStorageFull(error)));
    if (error instanceof PersistenceFailure) throw error;
  } finally {
    if (observer && !handedOn) observer.finished(watch, { actor: actor.name, outcome, state: run.live, failed });
  }
  return run.live;
}

/** The context a handler gets for one message: its state, its trace, and what it may do. */
function messageContext(host: DeliveryHost, actor: ActivatedActor, run: Run, { envelope, replyTo }: Delivery, nactPersist: NactPersist): ActorContext<unknown, Message> {
  const { address, name, behaviour } = actor;
  const trace: TraceContext = { traceId: envelope.traceId, spanId: envelope.spanId };
  const meta: EventMeta = { traceId: envelope.traceId, spanId: envelope.spanId };
  let messageLogger: Logger | undefined;
  return {
    id: address.id,
    name,
    get state() {
      return run.live;
    },
    envelope,
    trace,
    // Made on first use: most messages log nothing, and a pino child per message showed in profiles.
    get logger() {
      messageLogger ??= actor.logger().child({ traceId: envelope.traceId, message: envelope.type });
      return messageLogger;
    },
    async persist(...events) {
      // Issued in one turn, so the journal commits them in one transaction.
      try {
        await Promise.all(events.map((event) => nactPersist(event, host.tagsFor(event), meta)));
      } catch (cause) {
        throw new PersistenceFailure(`${name} could not persist ${events.map((event) => event.type).join(', ')}`, { cause });
      }
      actor.proof?.proven();
      for (const event of events) run.live = behaviour.evolve(run.live, event);
      sendHeldReply(run);
      return run.live;
    },
    reply(value) {
      run.replied = value;
      if (!replyTo) return;
      // A handler may answer before its event commits (the idempotency claim does). An activation
      // taken for new without reading its journal must not: its answer may come from a state that
      // is not the actor's, and a colliding first event hands the message to one that reads. So the
      // answer waits for the commit that proves the activation new.
      if (actor.proof?.pending === true) {
        run.held = () => dispatch(replyTo, value);
        return;
      }
      dispatch(replyTo, value);
    },
    deferReply() {
      if (!replyTo) return null;
      return { resolve: (value: unknown) => dispatch(replyTo, value) };
    },
    tell: (target, command) => host.tell(target, command, name, trace),
    self: actor,
    ask: (target, command, timeoutMs) => host.ask(target, command, name, trace, timeoutMs),
  };
}
