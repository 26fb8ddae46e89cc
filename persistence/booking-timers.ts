import { BOOKING, type BookingMessage } from '../actors/booking/actor.js';
import { wakeAtAfter, type BookingEvent } from '../actors/booking/decider.js';
import type { JournalRow } from '../runtime/kernel/journal.js';
import type { Db } from './sqlite.js';
import { systemClock, type Clock } from '../runtime/ground/clock.js';
import type { ActorDirectory } from '../runtime/kernel/directory.js';
import { rootContext } from '../runtime/ground/trace-context.js';
import type { Logger } from '../runtime/ground/logger.js';

/**
 * A booking woken and still due is woken again after this: a wake-up is at least once. Still due means
 * its compensation is failing, or the wake-up did not take (seen under load: a booking left CONFIRMED
 * past its deadline until the next wake-up; 30 s here made that 30 s late). Each such booking costs
 * one message per interval.
 */
const REFIRE_AFTER_MS = 2_000;
/** Bookings woken per tick: a backlog after downtime drains in slices, not in one burst. */
const BATCH = 500;
const MIN_DELAY_MS = 50;

/**
 * Durable booking timers (confirmation and unlock deadlines, compensation retries). nact has no
 * durable timers and a passivated or restarted booking actor has none in memory, so the deadline lives
 * in the `bookings` read model (`wake_at`, kept by the projector in the journal's transaction) and this
 * one timer wakes the actor when it is due; the actor decides what the wake-up means.
 */
export class BookingTimers {
  private readonly nextFuture;
  private readonly due;
  /** Booking id → when it was last woken, for those woken less than REFIRE_AFTER_MS ago. */
  private readonly lastFired = new Map<string, number>();
  private cancelTimer: (() => void) | null = null;
  private armedFor = Number.POSITIVE_INFINITY;
  private stopped = false;
  private woken = 0;

  constructor(
    db: Db,
    private readonly directory: ActorDirectory,
    private readonly logger: Logger,
    private readonly clock: Clock = systemClock,
  ) {
    this.nextFuture = db.prepare<[number], { next: number | null }>('SELECT MIN(wake_at) AS next FROM bookings WHERE wake_at > ?');
    this.due = db.prepare<[number, number], { id: string }>('SELECT id FROM bookings WHERE wake_at IS NOT NULL AND wake_at <= ? ORDER BY wake_at LIMIT ?');
  }

  /** Wakes what came due while the process was down, then keeps one timer for the next deadline. */
  start(): void {
    this.fire();
  }

  /** Journal commit listener: a booking event may have set an earlier deadline. */
  onCommit(rows: readonly JournalRow[]): void {
    if (this.stopped) return;
    const now = this.clock.now();
    let touched = false;
    let overdue = false;
    for (const row of rows) {
      if (!row.persistenceKey.startsWith('booking/')) continue;
      touched = true;
      // A deadline already past when its event commits (a window shorter than the commit took, a
      // stalled event loop) is not "future" for `nextFuture`: without this it would wait for some other
      // booking's timer, or for a restart, and keep its vehicle meanwhile.
      const wakeAt = wakeAtAfter(row.data as BookingEvent);
      if (typeof wakeAt === 'number' && wakeAt <= now) overdue = true;
    }
    if (touched) this.rearm(overdue);
  }

  stats(): { woken: number; nextWakeAt: number | null } {
    return { woken: this.woken, nextWakeAt: Number.isFinite(this.armedFor) ? this.armedFor : null };
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  /** `dueNow`: a booking just became due (see onCommit); fire() looks for it at the next turn. */
  private rearm(dueNow = false): void {
    if (this.stopped) return;
    const now = this.clock.now();
    let next = dueNow ? now : (this.nextFuture.get(now)?.next ?? Number.POSITIVE_INFINITY);
    // Woken bookings that may still be due (a failing compensation) are looked at again later.
    for (const firedAt of this.lastFired.values()) next = Math.min(next, firedAt + REFIRE_AFTER_MS);
    if (!Number.isFinite(next)) return;
    const at = Math.max(next, now + MIN_DELAY_MS);
    if (this.cancelTimer && at >= this.armedFor) return;
    this.cancelTimer?.();
    this.armedFor = at;
    this.cancelTimer = this.clock.schedule(() => this.fire(), at - now);
  }

  private fire(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const now = this.clock.now();
    for (const [id, firedAt] of this.lastFired) if (now - firedAt >= REFIRE_AFTER_MS) this.lastFired.delete(id);
    // Bookings woken in the last REFIRE_AFTER_MS may still be due (a failing compensation): read past
    // them, so that they never crowd newly due bookings out of the batch.
    let woken = 0;
    for (const { id } of this.due.all(now, BATCH + this.lastFired.size + 1)) {
      if (this.lastFired.has(id)) continue;
      if (woken === BATCH) {
        // More are due than one batch wakes: the next batch follows at once, not at the next deadline.
        this.rearm(true);
        return;
      }
      woken += 1;
      this.lastFired.set(id, now);
      this.woken += 1;
      const wake: BookingMessage = { type: 'WakeUp' };
      try {
        this.directory.tell({ kind: BOOKING, id }, wake, 'timer', rootContext());
      } catch (error) {
        this.logger.error({ err: error, bookingId: id }, 'could not wake booking');
      }
    }
    this.rearm();
  }
}
