import { kafkajsPrototype } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 keeps every broker connection's request queue polling itself with a timer of ~1 ms,
 * for as long as the connection lives, even with nothing queued: `scheduleCheckPendingRequests` in
 * `src/network/requestQueue/index.js` arms `setTimeout(check, throttledUntil - now)`, a negative delay
 * when nothing is throttled, and every check arms the next (kafkajs issues #1556 and #1704; the fix of
 * pull request #1667 was never released). Measured here: an idle cluster node's main thread (its
 * group and owner-record consumers) busy ~4 % of a core, and each shard worker (its journal producer)
 * ~2 %, on timers alone, at every node, under load as well as idle.
 *
 * A check is needed only while requests wait in the queue: `push` arms one when it queues a request,
 * a fulfilled request checks the queue itself, and a throttled queue with requests waiting still
 * arms its check for the end of the throttle. So the queue is left to arm its timer only when it holds
 * requests, which is #1667's change, applied to the installed kafkajs once per thread.
 */

const PATCHED = Symbol.for('fleetactors.kafkajs.quietRequestQueue');

interface RequestQueuePrototype {
  scheduleCheckPendingRequests: ((this: { pending: readonly unknown[] }) => void) & { [PATCHED]?: true };
}

/** Patches kafkajs' request queue once; true when the fix is in effect. */
export function quietIdleConnections(): boolean {
  const prototype = kafkajsPrototype<RequestQueuePrototype>('network/requestQueue/index.js', 'scheduleCheckPendingRequests');
  if (prototype === null) return false;
  const schedule = prototype.scheduleCheckPendingRequests;
  if (schedule[PATCHED] === true) return true;
  const quiet: RequestQueuePrototype['scheduleCheckPendingRequests'] = function (this: { pending: readonly unknown[] }): void {
    if (this.pending.length === 0) return;
    schedule.call(this);
  };
  quiet[PATCHED] = true;
  prototype.scheduleCheckPendingRequests = quiet;
  return true;
}
