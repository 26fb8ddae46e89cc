/**
 * What crosses the boundary of a shard (docs/architecture.md, "Shards"): plain, structured-clone-able data
 * only, no closures, no class identity, rejections as values. Today it travels over a MessagePort
 * between the main thread and a worker (or a MessageChannel inside one thread, in tests); nothing in
 * it assumes shared memory, so the same messages could cross a socket to a shard in another process.
 * The kernel knows the envelope only: what a call asks and answers (`ShardExchange`), what a shard
 * reports (`Stats`) and the events it pushes (`Event`) are the composition root's (server/shard-calls.ts).
 */

/** A request to a shard: `op` names it. */
export interface ShardCallShape {
  readonly op: string;
}

/**
 * One kind of call and what it answers. A shard's calls are a union of these (server/shard-calls.ts):
 * the link types each answer from the call it was given, so a caller never casts, and the shard's
 * handler must answer what the union says.
 */
export interface ShardExchange {
  readonly call: ShardCallShape;
  readonly answer: unknown;
}

/** Every call of an exchange union. */
export type CallOf<E extends ShardExchange> = E['call'];

/** The answers of the exchanges whose call `C` is, for each call of a union `C` (never for none). */
type Matching<E extends ShardExchange, C> = C extends unknown
  ? E extends { readonly call: infer K; readonly answer: infer A }
    ? [C] extends [K]
      ? A
      : never
    : never
  : never;

/**
 * What call `C` answers; for a union of calls, the union of their answers. Should a call fit no
 * exchange, it answers `unknown`, never `never`: the caller then has to look before it uses it.
 */
export type AnswerOf<E extends ShardExchange, C extends CallOf<E>> = [Matching<E, C>] extends [never] ? unknown : Matching<E, C>;

/**
 * Main thread → shard. Calls travel in batches: those made in one turn of the main thread's event
 * loop go in one message (one structured clone and one wake-up of the worker instead of one each).
 */
export type ToShard<Call extends ShardCallShape> =
  | { readonly t: 'calls'; readonly calls: ReadonlyArray<{ readonly id: number; readonly call: Call }> }
  /** Start or stop pushing events as they commit (only while someone follows them live). */
  | { readonly t: 'follow-events'; readonly on: boolean };

/** Shard → main thread. */
export type FromShard<Stats, Event> =
  | { readonly t: 'ready'; readonly stats: Stats }
  /** Start-up failed: the shard will not serve (the message says why). */
  | { readonly t: 'failed'; readonly error: string }
  /**
   * The shard stopped serving for good (its journal of record refused a batch): every waiting and later
   * call fails now. `fenced`: another owner took it, so it must not be started again here.
   */
  | { readonly t: 'halted'; readonly reason: string; readonly fenced: boolean }
  /** The answers of one turn of the shard's event loop, in one message. */
  | { readonly t: 'results'; readonly results: readonly ShardResult[] }
  | { readonly t: 'events'; readonly events: readonly Event[] }
  | { readonly t: 'stats'; readonly stats: Stats };

/** `ok: false` only for a failure outside the domain (a bug, a closed journal): rejections are values in `value`. */
export type ShardResult = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

/** The two ends of a MessagePort, a Worker or a worker's parentPort: all the shard boundary needs. */
export interface ShardPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}
