/**
 * Time for what decides by it: booking deadlines and the timer that wakes them. Injected (an inline
 * shard's `LocalShardOptions.clock`) so that a test moves time forward instead of waiting for it, and
 * an expiry does not depend on how loaded the machine is.
 */
export interface Clock {
  now(): number;
  /** Calls `callback` once, `ms` from now on this clock; the returned function cancels it. */
  schedule(callback: () => void, ms: number): () => void;
}

/** The wall clock; its timers never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
