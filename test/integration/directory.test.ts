import { afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { startActorSystem, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import type { TraceStep } from '../../runtime/kernel/trace-step.js';
import { ActorDirectory, AskTimeoutError, ActorFailed, type ActorBehaviour, type Freshness } from '../../runtime/kernel/directory.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/** A counter actor: the smallest persistent behaviour that shows activation, recovery and ordering. */
type CounterCommand = { type: 'Add'; amount: number } | { type: 'AddEarly'; amount: number } | { type: 'Get' } | { type: 'Hang' } | { type: 'Explode' };
type CounterEvent = { type: 'Added'; amount: number };
interface CounterState {
  total: number;
  seen: number[];
}

/** Per directory: a stopped system's late `onStopped` callbacks must not count in the next test. */
let lifecycle = { activated: 0, stopped: 0 };

function counter(life: typeof lifecycle): ActorBehaviour<CounterState, CounterCommand, CounterEvent> {
  return {
    initialState: { total: 0, seen: [] },
    evolve: (state, event) => {
      if (event.type !== 'Added') throw new Error(`cannot apply ${String(event.type)}`);
      return { total: state.total + event.amount, seen: [...state.seen, event.amount] };
    },
    onActivated: () => {
      life.activated += 1;
    },
    onStopped: () => {
      life.stopped += 1;
    },
    async handle(ctx, command) {
      switch (command.type) {
        case 'Add':
          await ctx.persist({ type: 'Added', amount: command.amount });
          return ctx.reply(ctx.state.total);
        case 'AddEarly': {
          // Answers once its event is queued, before it commits (as the payment and the claim do).
          const persisted = ctx.persist({ type: 'Added', amount: command.amount });
          ctx.reply(ctx.state.total + command.amount);
          await persisted;
          return;
        }
        case 'Get':
          return ctx.reply(ctx.state);
        case 'Hang':
          return; // never answers
        case 'Explode':
          throw new Error('boom');
      }
    },
  };
}

describe('ActorDirectory (virtual actors on nact)', () => {
  let temp: TempDbFile;
  let db: Db;
  let system: ActorSystem;
  let journal: SqliteJournalEngine;
  const steps: TraceStep[] = [];

  /** An amount the journal refuses (a failing projector stands for a full disk or a broken read model). */
  const REFUSED = -13;
  const start = (passivateAfterMs = 60_000, startsFresh?: (kind: string, command: { type: string }) => Freshness) => {
    db = openDatabase(temp.file);
    journal = new SqliteJournalEngine(db, {
      projectors: [
        (row) => {
          if ((row.data as CounterEvent).amount === REFUSED) throw new Error('refused by the projector');
        },
      ],
    });
    const logger = createLogger('silent');
    system = startActorSystem(journal, logger);
    // Idle activations let their nact actor go within milliseconds: every test also crosses resumes.
    const directory = new ActorDirectory({ system, logger, passivateAfterMs, releaseAfterMs: 1, askTimeoutMs: 2000, traces: { record: (step) => steps.push(step) }, ...(startsFresh && { startsFresh }) });
    const life = { activated: 0, stopped: 0 };
    lifecycle = life;
    directory.register('counter', () => counter(life));
    return directory;
  };
  const stopAll = async (directory: ActorDirectory) => {
    directory.stopAll();
    system.stop();
    await journal.close();
    db.close();
  };

  afterEach(() => {
    temp?.cleanup();
    steps.length = 0;
  });

  it('activates one actor per id however many messages race in, and handles them in order', async () => {
    temp = tempDbFile();
    const directory = start();
    const trace = rootContext();
    const totals = await Promise.all(Array.from({ length: 200 }, (_, i) => directory.ask<number>({ kind: 'counter', id: 'c1' }, { type: 'Add', amount: i }, 'test', trace)));
    expect(directory.stats().activations).toBe(1);
    expect(lifecycle.activated).toBe(1);
    // Mailbox order is send order: each reply is the running total after its own add.
    expect(totals).toEqual(Array.from({ length: 200 }, (_, i) => (i * (i + 1)) / 2));
    await stopAll(directory);
  });

  it('recovers state from the journal after the system restarts', async () => {
    temp = tempDbFile();
    let directory = start();
    const trace = rootContext();
    for (const amount of [5, 7, 11]) await directory.ask({ kind: 'counter', id: 'c2' }, { type: 'Add', amount }, 'test', trace);
    await stopAll(directory);

    directory = start();
    const state = await directory.ask<CounterState>({ kind: 'counter', id: 'c2' }, { type: 'Get' }, 'test', trace);
    expect(state).toEqual({ total: 23, seen: [5, 7, 11] });
    await stopAll(directory);
  });

  it('stores a snapshot as the behaviour encodes it, and recovers from it decoded, then the events after it', async () => {
    temp = tempDbFile();
    // The counter's state under another name on disk, as a behaviour whose state changed shape keeps its old snapshot format.
    const encoded = (directory: ActorDirectory) =>
      directory.register('encoded', () => ({
        ...counter({ activated: 0, stopped: 0 }),
        toSnapshot: (state: CounterState) => ({ sum: state.total, amounts: state.seen }),
        fromSnapshot: (data: unknown) => {
          const { sum, amounts } = data as { sum: number; amounts: number[] };
          return { total: sum, seen: amounts };
        },
      }));
    const startEncoded = () => {
      const directory = start();
      // A second directory on the same system would clash with `start`'s: this one snapshots every 2 events,
      // counted across its nact actors (each ask below finds the last one let go: releaseAfterMs 1).
      const snapshotting = new ActorDirectory({ system, logger: createLogger('silent'), passivateAfterMs: 60_000, releaseAfterMs: 1, askTimeoutMs: 2000, snapshotEvery: 2 });
      encoded(snapshotting);
      return { directory, snapshotting };
    };
    const trace = rootContext();
    const address = { kind: 'encoded', id: 'e1' };
    let { directory, snapshotting } = startEncoded();
    for (const amount of [5, 7, 11]) {
      await snapshotting.ask(address, { type: 'Add', amount }, 'test', trace);
      // Each event by another nact actor of the same activation: the count to the snapshot carries over.
      await waitFor(() => snapshotting.stats().withMailbox === 0, { what: 'the nact actor let go' });
    }
    await waitFor(() => journal.readSnapshot('encoded/e1') !== undefined);
    expect(journal.readSnapshot('encoded/e1')).toMatchObject({ sequenceNumber: 2, data: { sum: 12, amounts: [5, 7] } });
    snapshotting.stopAll();
    await stopAll(directory);

    ({ directory, snapshotting } = startEncoded());
    const events = vi.spyOn(journal, 'events');
    expect(await snapshotting.ask<CounterState>(address, { type: 'Get' }, 'test', trace)).toEqual({ total: 23, seen: [5, 7, 11] });
    // Recovery read the journal after the snapshot only.
    expect(events).toHaveBeenCalledWith('encoded/e1', 2);
    snapshotting.stopAll();
    await stopAll(directory);
  });

  it('passivates idle actors and routes the next message to a fresh activation that recovered', async () => {
    temp = tempDbFile();
    const directory = start(50);
    const address = { kind: 'counter', id: 'c3' };
    const trace = rootContext();
    await directory.ask(address, { type: 'Add', amount: 3 }, 'test', trace);
    await waitFor(() => !directory.isActive(address), { what: 'passivation' });
    // nact calls afterStop (our onStopped) in the turn after the stop.
    await waitFor(() => lifecycle.stopped === 1, { what: 'onStopped after passivation' });

    // Fire-and-forget right after passivation: nact would drop it on the stopped actor; the directory must not.
    directory.tell(address, { type: 'Add', amount: 4 }, 'test', trace);
    const state = await directory.ask<CounterState>(address, { type: 'Get' }, 'test', trace);
    expect(state.total).toBe(7);
    expect(directory.stats().activations).toBe(2);
    await stopAll(directory);
  });

  it('keeps an idle actor as a record without a nact actor, and its next message resumes it without reading the journal', async () => {
    temp = tempDbFile();
    const directory = start();
    const address = { kind: 'counter', id: 'c9' };
    const trace = rootContext();
    expect(await directory.ask<number>(address, { type: 'Add', amount: 2 }, 'test', trace)).toBe(2);
    // The nact actor is let go in the turn after its mailbox emptied; the activation stays.
    await waitFor(() => directory.stats().withMailbox === 0, { what: 'the idle activation lets its nact actor go' });
    expect(directory.isActive(address)).toBe(true);

    const snapshotReads = vi.spyOn(journal, 'latestSnapshot');
    const eventReads = vi.spyOn(journal, 'events');
    // A burst while it is idle: one nact actor again, the messages in order, the state it had.
    const totals = await Promise.all([3, 4, 5].map((amount) => directory.ask<number>(address, { type: 'Add', amount }, 'test', trace)));
    expect(totals).toEqual([5, 9, 14]);
    expect(await directory.ask<CounterState>(address, { type: 'Get' }, 'test', trace)).toEqual({ total: 14, seen: [2, 3, 4, 5] });
    expect(snapshotReads).not.toHaveBeenCalled();
    expect(eventReads).not.toHaveBeenCalled();
    // One activation all along: onActivated once, and the journal's sequence goes on without a gap or a clash.
    expect(directory.stats().activations).toBe(1);
    expect(lifecycle.activated).toBe(1);
    expect(journal.readAfter(0, 10).map((row) => row.sequenceNumber)).toEqual([1, 2, 3, 4]);
    await stopAll(directory);
    // Stopping the directory stops the activation, with or without its nact actor at that moment: onStopped runs once.
    await waitFor(() => lifecycle.stopped === 1, { what: 'onStopped after stopAll' });
  });

  it('rejects an ask that gets no answer with AskTimeoutError, and a failing handler with ActorFailed at once', async () => {
    temp = tempDbFile();
    const directory = start();
    const trace = rootContext();
    await expect(directory.ask({ kind: 'counter', id: 'c4' }, { type: 'Hang' }, 'test', trace, 100)).rejects.toBeInstanceOf(AskTimeoutError);
    await expect(directory.ask({ kind: 'counter', id: 'c4' }, { type: 'Explode' }, 'test', trace, 5000)).rejects.toBeInstanceOf(ActorFailed);
    // The actor keeps working after a handler threw.
    expect(await directory.ask<number>({ kind: 'counter', id: 'c4' }, { type: 'Add', amount: 1 }, 'test', trace)).toBe(1);
    await stopAll(directory);
  });

  it('records every delivery with its trace, sender, state before and after', async () => {
    temp = tempDbFile();
    const directory = start();
    const trace = rootContext();
    await directory.ask({ kind: 'counter', id: 'c5' }, { type: 'Add', amount: 2 }, 'http', trace);
    const [step] = steps;
    expect(step).toMatchObject({
      traceId: trace.traceId,
      parentSpanId: trace.spanId,
      fromActor: 'http',
      toActor: 'counter/c5',
      messageType: 'Add',
      payload: { type: 'Add', amount: 2 },
      stateBefore: { total: 0, seen: [] },
      stateAfter: { total: 2, seen: [2] },
      outcome: 2,
    });
    expect(step!.spanId).toMatch(/^[0-9a-f]{16}$/);
    await stopAll(directory);
  });

  it('journals events with the trace of the message that caused them', async () => {
    temp = tempDbFile();
    const directory = start();
    const trace = rootContext();
    await directory.ask({ kind: 'counter', id: 'c6' }, { type: 'Add', amount: 1 }, 'http', trace);
    const [row] = journal.readAfter(0, 10);
    expect(row).toMatchObject({ persistenceKey: 'counter/c6', sequenceNumber: 1, eventType: 'Added', traceId: trace.traceId });
    await stopAll(directory);
  });

  it('stops an actor whose event the journal refused, and its next activation goes on from what is durable', async () => {
    temp = tempDbFile();
    const directory = start();
    const address = { kind: 'counter', id: 'c7' };
    const trace = rootContext();
    await directory.ask(address, { type: 'Add', amount: 1 }, 'test', trace);
    await expect(directory.ask(address, { type: 'Add', amount: REFUSED }, 'test', trace)).rejects.toBeInstanceOf(ActorFailed);
    // The next message reaches a new activation, recovered from the journal: no trace of the refused
    // event, and its sequence numbers continue without a gap or a clash.
    expect(await directory.ask<number>(address, { type: 'Add', amount: 2 }, 'test', trace)).toBe(3);
    expect(directory.stats().activations).toBe(2);
    expect(await directory.ask<CounterState>(address, { type: 'Get' }, 'test', trace)).toEqual({ total: 3, seen: [1, 2] });
    expect(journal.readAfter(0, 10).map((row) => row.sequenceNumber)).toEqual([1, 2]);
    await stopAll(directory);
  });

  it('answers the callers of an actor whose journal cannot be replayed, without activating it in a loop', async () => {
    temp = tempDbFile();
    const directory = start();
    // A row this behaviour cannot apply (written by a newer version, or corrupted).
    await journal.persist({ data: { type: 'Bogus' }, sequenceNumber: 1, key: 'counter/c8', tags: [], createdAt: Date.now(), isDeleted: false });
    const trace = rootContext();
    await expect(directory.ask({ kind: 'counter', id: 'c8' }, { type: 'Get' }, 'test', trace, 2000)).rejects.toBeInstanceOf(ActorFailed);
    expect(directory.stats().activations).toBe(1);
    // Event-ordered, not slept: a loop would re-activate it on its own (a redelivery a turn after the
    // crash) before a second ask has gone through a recovery of its own. One activation per ask it is.
    await expect(directory.ask({ kind: 'counter', id: 'c8' }, { type: 'Get' }, 'test', trace, 2000)).rejects.toBeInstanceOf(ActorFailed);
    expect(directory.stats().activations).toBe(2);
    expect(directory.stats().active).toBe(0);
    await stopAll(directory);
  });

  describe('actors taken for new (startsFresh)', () => {
    const addCreates = (kind: string, command: { type: string }) => kind === 'counter' && command.type === 'Add';

    it('activates a new actor without reading its journal', async () => {
      temp = tempDbFile();
      const directory = start(60_000, addCreates);
      const snapshotReads = vi.spyOn(journal, 'readSnapshot');
      const trace = rootContext();
      expect(await directory.ask<number>({ kind: 'counter', id: 'f1' }, { type: 'Add', amount: 4 }, 'test', trace)).toBe(4);
      expect(snapshotReads).not.toHaveBeenCalled();
      expect(journal.readAfter(0, 10).map((row) => [row.persistenceKey, row.sequenceNumber])).toEqual([['counter/f1', 1]]);
      await stopAll(directory);
    });

    it('an actor that has a journal after all is recovered, and the message and those queued behind it are answered from its real state', async () => {
      temp = tempDbFile();
      let directory = start();
      const trace = rootContext();
      for (const amount of [5, 7, 11]) await directory.ask({ kind: 'counter', id: 'f2' }, { type: 'Add', amount }, 'test', trace);
      await stopAll(directory);

      directory = start(60_000, addCreates);
      const address = { kind: 'counter', id: 'f2' };
      const [added, state] = await Promise.all([
        directory.ask<number>(address, { type: 'Add', amount: 1 }, 'test', trace),
        directory.ask<CounterState>(address, { type: 'Get' }, 'test', trace),
      ]);
      expect(added).toBe(24);
      expect(state).toEqual({ total: 24, seen: [5, 7, 11, 1] });
      // No clash left behind: the journal goes on 1, 2, 3, 4, and the wrong guess answered nobody.
      expect(journal.readAfter(0, 10).map((row) => row.sequenceNumber)).toEqual([1, 2, 3, 4]);
      expect(directory.stats().activations).toBe(2);
      await stopAll(directory);
    });

    it('an activation taken for new whose first message persisted nothing hands the next message to one that reads the journal', async () => {
      temp = tempDbFile();
      let directory = start();
      const trace = rootContext();
      await directory.ask({ kind: 'counter', id: 'f3' }, { type: 'Add', amount: 9 }, 'test', trace);
      await stopAll(directory);

      // A rule that (wrongly) takes a read for a creating command: nothing proves the actor new.
      directory = start(60_000, (_kind, command) => command.type === 'Get');
      const address = { kind: 'counter', id: 'f3' };
      await directory.ask(address, { type: 'Get' }, 'test', trace);
      expect(await directory.ask<number>(address, { type: 'Add', amount: 1 }, 'test', trace)).toBe(10);
      expect(journal.readAfter(0, 10).map((row) => row.sequenceNumber)).toEqual([1, 2]);
      await stopAll(directory);
    });

    /** A counter that already has a journal (9 added) when the directory under test starts. */
    const journalled = async (id: string) => {
      const before = start();
      await before.ask({ kind: 'counter', id }, { type: 'Add', amount: 9 }, 'test', rootContext());
      await stopAll(before);
    };

    it('an answer given before the first commit by an activation taken for new on a guess never leaves it when the guess was wrong', async () => {
      temp = tempDbFile();
      await journalled('f4');
      const trace = rootContext();
      const directory = start(60_000, (_kind, command) => command.type === 'AddEarly');
      // The guess answers 1 (from an empty state) before its event collides; that answer is held, and
      // the activation that reads the journal answers 10.
      expect(await directory.ask<number>({ kind: 'counter', id: 'f4' }, { type: 'AddEarly', amount: 1 }, 'test', trace)).toBe(10);
      // A guess that was right answers once its first event commits.
      expect(await directory.ask<number>({ kind: 'counter', id: 'f5' }, { type: 'AddEarly', amount: 3 }, 'test', trace)).toBe(3);
      expect(directory.stats().activations).toBe(3);
      await stopAll(directory);
    });

    it("'checked': the journal is asked first, so an actor with a journal is recovered and one without answers before its commit", async () => {
      temp = tempDbFile();
      await journalled('f6');
      const trace = rootContext();
      const directory = start(60_000, (_kind, command) => (command.type === 'AddEarly' ? 'checked' : false));
      const snapshotReads = vi.spyOn(journal, 'readSnapshot');
      expect(await directory.ask<number>({ kind: 'counter', id: 'f6' }, { type: 'AddEarly', amount: 1 }, 'test', trace)).toBe(10);
      expect(snapshotReads).toHaveBeenCalledTimes(1); // found: recovered from its journal
      expect(await directory.ask<number>({ kind: 'counter', id: 'f7' }, { type: 'AddEarly', amount: 3 }, 'test', trace)).toBe(3);
      expect(snapshotReads).toHaveBeenCalledTimes(1); // not found: new, nothing read
      // One activation each: no wrong guess to hand over.
      expect(directory.stats().activations).toBe(2);
      await stopAll(directory);
    });
  });
});
