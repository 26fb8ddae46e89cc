import { MessageChannel, Worker } from 'node:worker_threads';
import { serveShard, type ShardServer } from '../runtime/kernel/shard-host.js';
import { ShardLink } from '../runtime/kernel/shard-link.js';
import type { FleetExchange, FleetShardLink, ShardEvent, ShardStats } from './shard-calls.js';
import type { Logger } from '../runtime/ground/logger.js';
import { startShard, type LocalShardOptions, type RunningShard, type ShardInit } from './shard.js';

/**
 * Starts the shards and keeps them running (docs/architecture.md, "Shards"): each in a worker thread, or, for
 * tests, in this thread over a MessageChannel (the same protocol, the same code). A worker that dies is
 * started again from its journal, with a backoff; while it is down its link answers every request at
 * once with ShardUnavailable (503), never a hang.
 */
export type ShardRuntime = 'worker' | 'inline';

export interface ShardSupervisorOptions {
  readonly inits: readonly ShardInit[];
  readonly runtime: ShardRuntime;
  readonly logger: Logger;
  /** Inline shards only: things that do not cross a thread (a test's payment gateway). */
  readonly local?: Omit<LocalShardOptions, 'logger'>;
  /** How long a shard may take to start (recovery of its journal's open work included). */
  readonly startTimeoutMs?: number;
  /**
   * Worker runtime: keep one spare worker thread with the shard's code loaded, which the next shard to
   * start takes (a cluster node's gained shard after a failover: see `SpareWorker`).
   */
  readonly spareWorker?: boolean;
}

const RESTART_BACKOFF_MS = { initial: 100, max: 5000 };
const STOP_GRACE_MS = 30_000;
/** Up this long, a shard counts as healthy again: its next crash restarts it after the shortest backoff. */
const STABLE_AFTER_MS = 30_000;

/**
 * The built server (npm start) runs dist/server/shard-worker.js. From source (tsx, vitest) the worker
 * must load TypeScript, and on Node 20 a worker's `--import tsx` comes too late for its entry file:
 * a tiny bootstrap registers tsx's loader in the worker first, then imports the entry.
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { entry: new URL('./shard-worker.js', import.meta.url), eval: false };
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./shard-worker.ts', import.meta.url).href;
  return { entry: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`, eval: true };
}
const WORKER = workerEntry();
/** A shard's worker thread, given its ShardInit, or a spare's data. */
const shardWorker = (workerData: ShardInit | SpareWorkerData, name: string): Worker => new Worker(WORKER.entry, { eval: WORKER.eval, workerData, name });

interface Slot {
  readonly init: ShardInit;
  readonly link: FleetShardLink;
  worker: Worker | null;
  inline: { running: RunningShard; server: ShardServer; close: () => void } | null;
  restarts: number;
  consecutiveFailures: number;
  upSince: number | null;
  restartTimer: NodeJS.Timeout | null;
  /** Given away (cluster mode): never started again. */
  released: boolean;
}

/** What a spare worker is started with: it waits for its shard's ShardInit (server/shard-worker.ts). */
export interface SpareWorkerData {
  readonly spare: true;
}
/** The one message a spare worker takes before it is a shard's. */
export interface SpareWorkerInit {
  readonly t: 'init';
  readonly init: ShardInit;
}

/** A spare is made this long after the start that took the last one, so that its loading does not compete with that start's first work (a restore) for the CPU. */
const SPARE_AFTER_MS = 2000;

/**
 * One worker thread started ahead, with the shard's code loaded (about 0.3 s of module loading on this
 * box, more while a failover keeps it busy), so that a shard this node gains starts on it at once. A
 * cluster node gains shards when another node dies: that start is on the failover's path. The spare
 * is unreferenced (it keeps no process alive) and terminated when the supervisor closes.
 */
class SpareWorker {
  private worker: Worker | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly logger: Logger) {}

  /** The spare given `init`, or null when there is none ready (the caller starts a worker itself). A new spare follows. */
  take(init: ShardInit): Worker | null {
    const worker = this.worker;
    this.worker = null;
    this.later();
    if (worker === null) return null;
    worker.removeAllListeners('exit');
    worker.ref();
    worker.postMessage({ t: 'init', init } satisfies SpareWorkerInit);
    return worker;
  }

  /** Makes the spare after a pause. */
  later(): void {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed || this.worker !== null) return;
      const worker = shardWorker({ spare: true } satisfies SpareWorkerData, 'shard-spare');
      worker.unref();
      worker.on('error', (error) => this.logger.error({ err: error }, 'spare shard worker failed'));
      // A spare that died (it should not) is replaced on the next take; the shard then starts on a new thread.
      worker.once('exit', (code) => {
        if (this.worker !== worker) return;
        this.worker = null;
        if (!this.closed) this.logger.warn({ code }, 'spare shard worker exited');
      });
      this.worker = worker;
    }, SPARE_AFTER_MS);
    this.timer.unref();
  }

  /** The spare's thread id, or null while there is none. */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }
}

const newSlot = (init: ShardInit): Slot => ({ init, link: new ShardLink<FleetExchange, ShardStats, ShardEvent>(init.shard), worker: null, inline: null, restarts: 0, consecutiveFailures: 0, upSince: null, restartTimer: null, released: false });

export class ShardSupervisor {
  /** By shard number: in cluster mode a node supervises only the shards it owns (server/cluster/), and they change. */
  private readonly byShard = new Map<number, Slot>();
  private closing = false;
  private readonly fencedListeners = new Set<(shard: number) => void>();
  private readonly spare: SpareWorker | null;

  private constructor(private readonly options: ShardSupervisorOptions) {
    for (const init of options.inits) this.byShard.set(init.shard, newSlot(init));
    this.spare = options.spareWorker === true && options.runtime === 'worker' ? new SpareWorker(options.logger) : null;
    this.spare?.later();
  }

  private get slots(): Slot[] {
    return [...this.byShard.values()].sort((a, b) => a.init.shard - b.init.shard);
  }

  /** Resolves once every shard is up; rejects (stopping the others) when one cannot start. */
  static async start(options: ShardSupervisorOptions): Promise<ShardSupervisor> {
    const supervisor = new ShardSupervisor(options);
    try {
      await Promise.all(supervisor.slots.map((slot) => supervisor.launch(slot)));
    } catch (error) {
      await supervisor.close();
      throw error;
    }
    return supervisor;
  }

  get links(): readonly FleetShardLink[] {
    return this.slots.map((slot) => slot.link);
  }

  get count(): number {
    return this.slots.length;
  }

  link(shard: number): FleetShardLink {
    return this.byShard.get(shard)!.link;
  }

  /** Whether this process runs the shard (always, but in cluster mode for a shard another node owns). */
  has(shard: number): boolean {
    return this.byShard.has(shard);
  }

  /** The parts of an inline shard (tests); null for a worker shard. */
  local(shard: number): RunningShard | null {
    return this.byShard.get(shard)?.inline?.running ?? null;
  }

  /** The spare worker's thread id, or null while there is none (diagnostics, tests). */
  get spareThreadId(): number | null {
    return this.spare?.threadId ?? null;
  }

  /** The thread id of a shard's worker, or null (inline, or down). */
  workerThreadId(shard: number): number | null {
    return this.byShard.get(shard)?.worker?.threadId ?? null;
  }

  restarts(shard: number): number {
    return this.byShard.get(shard)!.restarts;
  }

  /**
   * Ends a worker shard abruptly, as a crash would (tests and the chaos harness): nothing is flushed,
   * only what was committed survives. The supervisor starts it again.
   */
  async crash(shard: number): Promise<void> {
    const worker = this.byShard.get(shard)?.worker;
    if (!worker) throw new Error(`shard ${shard} is not a worker shard`);
    await worker.terminate();
  }

  /**
   * Cluster mode: starts a shard this node was given (server/cluster/shard-placement.ts). Resolves once
   * it serves; a start that fails leaves it to the usual restart backoff, so it rejects only for a
   * shard already here or a supervisor closing.
   */
  async acquire(init: ShardInit): Promise<void> {
    if (this.closing) throw new Error('the supervisor is closing');
    if (this.byShard.has(init.shard)) return;
    const slot = newSlot(init);
    this.byShard.set(init.shard, slot);
    try {
      await this.launch(slot);
    } catch (error) {
      this.options.logger.error({ err: error, shard: init.shard }, 'shard start failed; trying again');
      void slot.worker?.terminate();
    }
  }

  /** Cluster mode: stops a shard this node lost (gracefully: it flushes), and forgets it. Its link answers unavailable. */
  async release(shard: number): Promise<void> {
    const slot = this.byShard.get(shard);
    if (!slot) return;
    this.byShard.delete(shard);
    slot.released = true;
    await this.stop(slot);
  }

  /** Cluster mode: told when a shard stopped because another producer took it (server/cluster/shard-placement.ts). */
  onFenced(listener: (shard: number) => void): () => void {
    this.fencedListeners.add(listener);
    return () => this.fencedListeners.delete(listener);
  }

  /** Stops every shard gracefully (each flushes its journal), in parallel. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.slots.map((slot) => this.stop(slot)), this.spare?.close()]);
  }

  private launch(slot: Slot): Promise<void> {
    return this.options.runtime === 'inline' ? this.launchInline(slot) : this.launchWorker(slot);
  }

  /** In this thread, over a MessageChannel: the same protocol, the same code (tests). */
  private async launchInline(slot: Slot): Promise<void> {
    const { link, init } = slot;
    const { port1, port2 } = new MessageChannel();
    link.attach(port1);
    const ready = link.ready();
    const running = await startShard(init, { ...this.options.local, logger: this.options.logger });
    const server = serveShard(port2, running.handlers, this.options.logger.child({ shard: init.shard }));
    // Inline (tests): the halted shard stays in place, unreachable through its link.
    running.onHalt(({ reason, fenced }) => server.halt(reason, fenced));
    slot.inline = {
      running,
      server,
      close: () => {
        server.close();
        port1.close();
        port2.close();
      },
    };
    server.announceReady();
    await ready;
  }

  private async launchWorker(slot: Slot): Promise<void> {
    const { link, init } = slot;
    const log = this.options.logger.child({ shard: init.shard });
    const worker = this.spare?.take(init) ?? shardWorker(init, `shard-${init.shard}`);
    slot.worker = worker;
    link.attach(worker);
    worker.on('error', (error) => log.error({ err: error }, 'shard worker failed'));
    worker.once('exit', (code) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      const upSince = slot.upSince;
      slot.upSince = null;
      const fenced = link.fenced;
      link.detach(fenced ? 'fenced: another owner took the shard' : `worker exited with code ${code}`);
      // Fenced: starting it again would fence the owner that took it. It stays down on this node.
      if (fenced) {
        log.error('shard fenced by another owner; not restarted here');
        if (!this.closing && !slot.released) for (const listener of this.fencedListeners) listener(init.shard);
      }
      else if (!this.closing && !slot.released) this.restartLater(slot, code, upSince, log);
    });
    const timeoutMs = this.options.startTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        link.ready(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`shard ${init.shard} did not start within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      slot.upSince = Date.now();
    } finally {
      clearTimeout(timer);
    }
  }

  /** A worker that exited is started again from its journal, after a backoff that grows while it keeps dying. */
  private restartLater(slot: Slot, code: number, upSince: number | null, log: Logger): void {
    // A shard that was up a while starts its backoff again; one that dies right after start-up backs off further.
    const upFor = upSince === null ? 0 : Date.now() - upSince;
    slot.consecutiveFailures = upFor >= STABLE_AFTER_MS ? 1 : slot.consecutiveFailures + 1;
    const delay = Math.min(RESTART_BACKOFF_MS.max, RESTART_BACKOFF_MS.initial * 2 ** Math.min(slot.consecutiveFailures - 1, 10));
    log.error({ code, restartInMs: delay }, 'shard worker exited; restarting it from its journal');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      slot.restarts += 1;
      this.launch(slot).then(
        () => log.info({ restarts: slot.restarts }, 'shard worker restarted'),
        (error: unknown) => {
          // A start that hangs or fails ends its worker, whose exit schedules the next try.
          log.error({ err: error }, 'shard worker restart failed; trying again');
          void slot.worker?.terminate();
        },
      );
    }, delay);
  }

  private async stop(slot: Slot): Promise<void> {
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = null;
    if (slot.inline) {
      const { running, close } = slot.inline;
      slot.inline = null;
      await running.close();
      close();
      slot.link.detach('stopped');
      return;
    }
    const worker = slot.worker;
    if (!worker) return;
    try {
      if (slot.link.state === 'up') await slot.link.call({ op: 'stop' }, STOP_GRACE_MS);
    } catch (error) {
      this.options.logger.error({ err: error, shard: slot.init.shard }, 'shard did not stop cleanly');
    }
    slot.worker = null;
    slot.link.detach('stopped');
    await worker.terminate();
  }
}
