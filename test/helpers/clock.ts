import FakeTimers from '@sinonjs/fake-timers';
import type { Clock } from '../../runtime/ground/clock.js';

/** A clock that stands still until the test moves it (runtime/ground/clock.ts), for booking deadlines. */
export interface TestClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due on the way, in order. */
  advance(ms: number): void;
  /** Moves time forward to `at` (epoch ms); nothing when `at` is not ahead. */
  advanceTo(at: number): void;
}

/**
 * Starts at the wall clock's now, so that its times look like real ones next to the vehicles' (which
 * keep the wall clock), then moves only when told. Backed by @sinonjs/fake-timers' stand-alone clock:
 * nothing global is faked, so brokers, SQLite and HTTP keep their own timers.
 */
export function testClock(start = Date.now()): TestClock {
  const fake = FakeTimers.createClock(start);
  const clock: TestClock = {
    now: () => fake.now,
    schedule: (callback, ms) => {
      const id = fake.setTimeout(callback, ms);
      return () => fake.clearTimeout(id);
    },
    advance: (ms) => void fake.tick(ms),
    advanceTo: (at) => {
      if (at > fake.now) fake.tick(at - fake.now);
    },
  };
  return clock;
}
