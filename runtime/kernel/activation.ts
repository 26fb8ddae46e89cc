import { createRequire } from 'node:module';
import { spawnPersistent, type Ref } from 'nact';
import type { Logger } from '../ground/logger.js';
import type { ActorSystem } from './actor-system.js';
import type { ActorAddress, AnyBehaviour, Message } from './behaviour.js';
import { deliver, type ActivatedActor, type Delivery, type DeliveryHost, type NactPersist } from './delivery.js';
import { FreshProof } from './fresh-proof.js';
import { recoverFromCrash, type Supervision } from './recovery.js';

/**
 * One activation of one actor on nact: a persistent nact actor that recovers its state from snapshot
 * and journal, hands each message to `deliver`, passivates when idle and, when it crashes, hands its
 * mailbox on (recovery.ts). The directory decides when to make one (directory.ts).
 */

/** One live activation, as the directory keeps it. */
export interface Activation {
  readonly ref: Ref<Delivery>;
  readonly address: ActorAddress;
  /** Messages handed to nact and not yet handled: nact's own mailbox length is not public. */
  pending: number;
}

// nact keeps its live actors in this map; `find` is what its own dispatch uses. Its public API has no
// "is this reference alive" call, and nact has not changed since 2022, so reading it here is safe.
const systemMap = createRequire(import.meta.url)('nact/lib/system-map.js') as {
  find(systemName: string, reference: unknown): unknown;
};
export const isAlive = (ref: Ref<unknown>): boolean =>
  systemMap.find((ref as unknown as { system: { name: string } }).system.name, ref) !== undefined;

/** What an activation needs of its directory, besides what its deliveries need. */
export interface ActivationHost extends DeliveryHost {
  readonly system: ActorSystem;
  readonly logger: Logger;
  readonly passivateAfterMs: number;
  readonly snapshotEvery: number | undefined;
  /** The activation stopped (passivated, or stopped with the directory). */
  passivated(activation: Activation): void;
  /** The activation crashed: it is stopped and its messages go on (recovery.ts). */
  crashed(activation: Activation): void;
  redeliver(address: ActorAddress, delivery: Delivery): void;
}

/** `fresh`: the activation takes the actor for new and reads no journal until proven wrong (fresh-proof.ts). */
export function spawnActivation(host: ActivationHost, address: ActorAddress, behaviour: AnyBehaviour, name: string, fresh: boolean): Activation {
  const actor = activatedActor(host.logger, address, behaviour, name, fresh);
  // Set once spawnPersistent returned; messages are only handled after that (nact recovers in a setImmediate).
  // eslint-disable-next-line prefer-const
  let self: Activation;

  const handler = (state: unknown, message: unknown, nactContext: { recovering?: boolean; persist: NactPersist }): unknown => {
    const current = state === undefined ? behaviour.initialState : state;
    if (nactContext.recovering) return behaviour.evolve(current, message as Message);
    self.pending -= 1;
    return deliver(host, actor, current, message as Delivery, nactContext.persist);
  };

  // nact types its context without `persist`/`recovering`, which the persistent actor does pass.
  const ref = spawnPersistent(host.system.ref, handler as unknown as Parameters<typeof spawnPersistent>[1], name, name.replace('/', '.'), {
    shutdownAfter: host.passivateAfterMs,
    snapshotEvery: host.snapshotEvery,
    snapshotEncoder: behaviour.toSnapshot,
    snapshotDecoder: behaviour.fromSnapshot,
    afterStop: (state: unknown) => {
      host.passivated(self);
      try {
        behaviour.onStopped?.(state === undefined ? behaviour.initialState : state);
      } catch (error) {
        actor.logger().error({ err: error }, 'onStopped failed');
      }
    },
    onCrash: (message: unknown, error: unknown, supervision: Supervision) => {
      host.crashed(self);
      return recoverFromCrash(actor, message, error, supervision, (to, delivery) => host.redeliver(to, delivery));
    },
  } as never);
  self = { ref: ref as Ref<Delivery>, address, pending: 0 };
  return self;
}

function activatedActor(logger: Logger, address: ActorAddress, behaviour: AnyBehaviour, name: string, fresh: boolean): ActivatedActor {
  // Made on first use, like each message's logger: three activations per booking, most never log.
  let actorLog: Logger | undefined;
  return {
    address,
    name,
    behaviour,
    proof: new FreshProof(fresh),
    activated: false,
    logger: () => (actorLog ??= logger.child({ actor: name })),
    describe: behaviour.describe?.bind(behaviour) ?? ((state) => state),
  };
}
