import type { AnswerOf, CallOf, FromShard, ShardExchange, ShardPort, ToShard } from './shard-protocol.js';
import { TurnBatch } from './turn-batch.js';

/** The shard is down (its worker died and is being restarted) or did not answer: the request gets a 503 at once. */
export class ShardUnavailableError extends Error {
  override readonly name = 'ShardUnavailableError';
  constructor(
    readonly shard: number,
    readonly reason: string,
  ) {
    super(`shard ${shard} is unavailable: ${reason}`);
  }
}

/** A shard answered a call with a failure outside the domain (a bug, a closed journal). */
export class ShardCallError extends Error {
  override readonly name = 'ShardCallError';
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export type ShardState = 'starting' | 'up' | 'down';

/**
 * The main thread's end of one shard: calls with replies matched by id, a deadline on every call so
 * that nothing hangs, and the shard's state. When the shard goes down every pending call fails with
 * ShardUnavailableError, and so does every new call until the shard is up again.
 */
export class ShardLink<Exchange extends ShardExchange, Stats, Event> {
  private port: ShardPort | null = null;
  private readonly pending = new Map<number, Pending>();
  /** The calls of this turn, posted together (runtime/kernel/turn-batch.ts). */
  private readonly outgoing = new TurnBatch<{ readonly id: number; readonly call: CallOf<Exchange> }>((calls) => this.post(calls));
  private nextId = 1;
  private readonly eventListeners = new Set<(events: readonly Event[]) => void>();
  private readyWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private latest: Stats | null = null;
  private downReason = 'starting';
  private following = false;
  private readonly upListeners = new Set<() => void>();
  /** The shard said another owner took it (`halted`, fenced): its supervisor does not start it again. */
  fenced = false;
  /** When the shard last came up (ms): a shard that dies soon after is restarted with a growing backoff. */
  upSince: number | null = null;
  state: ShardState = 'starting';

  constructor(readonly shard: number) {}

  /** A (new) port to the shard; the link goes up when the shard says `ready`. */
  attach(port: ShardPort): void {
    this.port = port;
    this.state = 'starting';
    this.fenced = false;
    port.on('message', this.onMessage);
    // A restarted shard follows GET /events again if the one before it did.
    if (this.following) this.followEvents(true);
  }

  /** The shard is gone: every waiting caller hears it now. */
  detach(reason: string): void {
    this.port?.off('message', this.onMessage);
    this.port = null;
    this.outgoing.drop();
    this.state = 'down';
    this.downReason = reason;
    this.upSince = null;
    // Its last figures are no longer true: /metrics shows nothing for it but fleet_shard_up 0.
    this.latest = null;
    const failure = new ShardUnavailableError(this.shard, reason);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(failure);
    }
    for (const waiter of this.readyWaiters) waiter.reject(failure);
    this.readyWaiters = [];
  }

  ready(): Promise<void> {
    if (this.state === 'up') return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** The answer's type follows from the call (ShardExchange): what the shard sends is trusted to be it. */
  call<C extends CallOf<Exchange>>(call: C, deadlineMs: number): Promise<AnswerOf<Exchange, C>> {
    const port = this.port;
    if (this.state !== 'up' || port === null) return Promise.reject(new ShardUnavailableError(this.shard, this.downReason));
    const id = this.nextId++;
    return new Promise<AnswerOf<Exchange, C>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ShardUnavailableError(this.shard, `no answer to ${call.op} within ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      this.outgoing.add({ id, call });
    });
  }

  private post(calls: Array<{ readonly id: number; readonly call: CallOf<Exchange> }>): void {
    const port = this.port;
    if (port === null) return;
    try {
      port.postMessage({ t: 'calls', calls } satisfies ToShard<CallOf<Exchange>>);
    } catch {
      // One call is not cloneable (a bug in its caller): it fails now, not at its deadline; the others go on.
      for (const one of calls) {
        try {
          port.postMessage({ t: 'calls', calls: [one] } satisfies ToShard<CallOf<Exchange>>);
        } catch (error) {
          const pending = this.pending.get(one.id);
          if (!pending) continue;
          clearTimeout(pending.timer);
          this.pending.delete(one.id);
          pending.reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
    }
  }

  /** The latest stats the shard pushed (null before it was first up). */
  stats(): Stats | null {
    return this.latest;
  }

  onEvents(listener: (events: readonly Event[]) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  followEvents(on: boolean): void {
    this.following = on;
    if (this.port === null) return;
    this.outgoing.flush();
    const message: ToShard<CallOf<Exchange>> = { t: 'follow-events', on };
    this.port.postMessage(message);
  }

  /** Called each time the shard comes up (also after a restart). */
  onUp(listener: () => void): () => void {
    this.upListeners.add(listener);
    return () => this.upListeners.delete(listener);
  }

  private readonly onMessage = (raw: unknown): void => {
    const message = raw as FromShard<Stats, Event>;
    switch (message.t) {
      case 'ready':
        this.latest = message.stats;
        this.state = 'up';
        this.upSince = Date.now();
        for (const waiter of this.readyWaiters) waiter.resolve();
        this.readyWaiters = [];
        for (const listener of this.upListeners) listener();
        return;
      case 'failed':
        this.detach(`start-up failed: ${message.error}`);
        return;
      case 'halted':
        this.detach(message.fenced ? `fenced: another owner took the shard (${message.reason})` : `stopped: ${message.reason}`);
        this.fenced = message.fenced;
        return;
      case 'results':
        for (const result of message.results) {
          const pending = this.pending.get(result.id);
          if (!pending) continue; // answered after its deadline: the caller has moved on
          this.pending.delete(result.id);
          clearTimeout(pending.timer);
          if (result.ok) pending.resolve(result.value);
          else pending.reject(new ShardCallError(`shard ${this.shard}: ${result.error}`));
        }
        return;
      case 'events':
        for (const listener of this.eventListeners) listener(message.events);
        return;
      case 'stats':
        this.latest = message.stats;
        return;
    }
  };
}
