import { configurePersistence, dispatch, spawn, start, stop, type ActorSystemRef, type PersistenceEngine, type Ref } from 'nact';
import type { Logger } from './logger.js';

/**
 * The only module (with runtime/directory.ts) that imports nact: nact 7.6 is unmaintained, so the
 * rest of the code depends on these few functions, not on it.
 */
export interface ActorSystem {
  readonly ref: ActorSystemRef;
  readonly logger: Logger;
  stop(): void;
}

export function startActorSystem(engine: PersistenceEngine, logger: Logger): ActorSystem {
  const ref = start(configurePersistence(engine));
  return { ref, logger, stop: () => stop(ref) };
}

export interface ActorHandle<Msg> {
  tell(message: Msg): void;
  stop(): void;
}

/**
 * A long-lived, non-persistent actor (the event relay, the telemetry router): one message at a time,
 * in arrival order, each handled to completion before the next. A handler that throws is logged and
 * the actor goes on with the next message.
 */
export function spawnSingleton<Msg>(
  system: ActorSystem,
  name: string,
  handle: (message: Msg) => Promise<void> | void,
): ActorHandle<Msg> {
  const log = system.logger.child({ actor: name });
  const ref: Ref<Msg> = spawn(
    system.ref,
    async (state: undefined, message: Msg) => {
      try {
        await handle(message);
      } catch (error) {
        log.error({ err: error }, 'singleton actor handler failed; continuing with the next message');
      }
      return state;
    },
    name,
  );
  return { tell: (message) => dispatch(ref, message), stop: () => stop(ref) };
}
