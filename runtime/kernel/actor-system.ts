import { configurePersistence, dispatch, spawn, start, stop, type ActorSystemRef, type PersistenceEngine, type Ref } from 'nact';
import type { PersistedEvent, PersistedSnapshot } from './journal.js';
import type { Logger } from '../ground/logger.js';

/**
 * The nact adapter: with the directory and its rooms (directory.ts, activation.ts, delivery.ts, recovery.ts), the only code that imports nact: nact 7.6 is unmaintained, so the
 * rest of the code depends on these few functions, not on it.
 */
export interface ActorSystem {
  readonly ref: ActorSystemRef;
  readonly logger: Logger;
  /** The next recovery of `persistenceKey` starts from nothing, without reading the journal (see JournalEngine.expectNew). */
  expectNew(persistenceKey: string): void;
  /**
   * The next recovery of `persistenceKey` is `state` at `sequenceNumber`, without reading the journal:
   * an idle activation the directory kept in memory gets a nact actor again (activation.ts).
   */
  resume(persistenceKey: string, state: unknown, sequenceNumber: number): void;
  /** The next recovery of `persistenceKey` reads the journal: a resume left by a nact actor stopped before it recovered does not apply. */
  recoverFromJournal(persistenceKey: string): void;
  /** Whether the journal holds anything of `persistenceKey` (a synchronous look-up; see JournalEngine.holds). */
  holds(persistenceKey: string): boolean;
  stop(): void;
}

/** What the kernel needs of a journal: persistence/journal-engine.ts is the one in use. */
export interface JournalEngine {
  persist(event: PersistedEvent, meta?: unknown): Promise<void>;
  events(persistenceKey: string, offset: number, limit?: number, tags?: readonly string[]): PromiseLike<readonly PersistedEvent[]>;
  latestSnapshot(persistenceKey: string): Promise<PersistedSnapshot | undefined>;
  takeSnapshot(snapshot: PersistedSnapshot): Promise<void>;
  /**
   * The next recovery of `persistenceKey` (one latestSnapshot + events) answers "nothing" without a
   * read: the directory says so for an actor it expects to be new. Only a hint: an actor that was not
   * new fails its first persist (the journal's key is unique) and is then recovered for real.
   */
  expectNew?(persistenceKey: string): void;
  /**
   * Whether anything of `persistenceKey` is in the journal or queued for it: one indexed look-up, for an
   * activation that must know it is new before its first commit (DirectoryOptions.startsFresh 'checked').
   * An engine without it answers "yes": the activation then reads its journal.
   */
  holds?(persistenceKey: string): boolean;
}

/**
 * The journal as nact's PersistenceEngine. nact's typings differ from what its runtime passes and
 * accepts (an optional meta argument, a snapshot that may be missing, a reducible stream): the
 * shapes match where it matters, which journal-engine.test.ts proves against real nact actors.
 */
export const asNactEngine = (engine: JournalEngine): PersistenceEngine => engine as unknown as PersistenceEngine;

export function startActorSystem(engine: JournalEngine, logger: Logger): ActorSystem {
  const resuming = new ResumingEngine(engine);
  const ref = start(configurePersistence(asNactEngine(resuming)));
  return { ref, logger, expectNew: (key) => engine.expectNew?.(key), resume: (key, state, sequenceNumber) => resuming.resume(key, state, sequenceNumber),
    recoverFromJournal: (key) => resuming.forget(key),
    holds: (key) => engine.holds?.(key) ?? true,
    stop: () => stop(ref),
  };
}

/** What nact's recovery reduces; an empty array is one (nact calls `events(...).reduce` at once). */
const nothingAfter: readonly PersistedEvent[] = [];

/**
 * The journal as nact's recovery reads it, except for an actor the directory resumes from memory:
 * its recovery (one `latestSnapshot`, then `events` after it) is answered with the state it had, as a
 * snapshot that is never stored, and no events. Writes go to the journal as they are.
 */
class ResumingEngine implements JournalEngine {
  private readonly resumed = new Map<string, PersistedSnapshot>();
  /** Keys whose resumed snapshot was read: their next `events` is the empty rest. */
  private readonly served = new Set<string>();

  constructor(private readonly engine: JournalEngine) {}

  resume(key: string, data: unknown, sequenceNumber: number): void {
    this.resumed.set(key, { data, sequenceNumber, key, createdAt: 0 });
  }

  forget(key: string): void {
    this.resumed.delete(key);
    this.served.delete(key);
  }

  persist(event: PersistedEvent, meta?: unknown): Promise<void> {
    return this.engine.persist(event, meta);
  }

  events(key: string, offset: number, ...rest: [limit?: number, tags?: readonly string[]]): PromiseLike<readonly PersistedEvent[]> {
    if (this.served.delete(key)) return nothingAfter as unknown as PromiseLike<readonly PersistedEvent[]>;
    return this.engine.events(key, offset, ...rest);
  }

  latestSnapshot(key: string): Promise<PersistedSnapshot | undefined> {
    const resumed = this.resumed.get(key);
    if (!resumed) return this.engine.latestSnapshot(key);
    this.resumed.delete(key);
    this.served.add(key);
    return Promise.resolve(resumed);
  }

  takeSnapshot(snapshot: PersistedSnapshot): Promise<void> {
    return this.engine.takeSnapshot(snapshot);
  }

  expectNew(key: string): void {
    this.engine.expectNew?.(key);
  }
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
