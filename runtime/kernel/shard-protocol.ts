/**
 * What crosses the boundary of a shard (docs/architecture.md, "Shards"): plain, structured-clone-able data
 * only, no closures, no class identity, rejections as values. Today it travels over a MessagePort
 * between the main thread and a worker (or a MessageChannel inside one thread, in tests); nothing in
 * it assumes shared memory, so the same messages could cross a socket to a shard in another process.
 * The kernel knows the envelope only: what a call asks (`Call`), what a shard reports (`Stats`) and
 * the events it pushes (`Event`) are the composition root's (server/shard-calls.ts).
 */

/** A request to a shard: `op` names it. */
export interface ShardCallShape {
  readonly op: string;
}

/** Main thread → shard. */
export type ToShard<Call extends ShardCallShape> =
  | { readonly t: 'call'; readonly id: number; readonly call: Call }
  /** Start or stop pushing events as they commit (only while someone follows them live). */
  | { readonly t: 'follow-events'; readonly on: boolean };

/** Shard → main thread. */
export type FromShard<Stats, Event> =
  | { readonly t: 'ready'; readonly stats: Stats }
  /** Start-up failed: the shard will not serve (the message says why). */
  | { readonly t: 'failed'; readonly error: string }
  /** `ok: false` only for a failure outside the domain (a bug, a closed journal): rejections are values in `value`. */
  | { readonly t: 'result'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'result'; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly t: 'events'; readonly events: readonly Event[] }
  | { readonly t: 'stats'; readonly stats: Stats };

/** The two ends of a MessagePort, a Worker or a worker's parentPort: all the shard boundary needs. */
export interface ShardPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}
