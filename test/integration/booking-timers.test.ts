import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { BookingTimers } from '../../persistence/booking-timers.js';
import type { ActorDirectory } from '../../runtime/kernel/directory.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { testClock, type TestClock } from '../helpers/clock.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * The timer alone, on a real `bookings` table; the directory only records whom it woke. Time is a
 * test clock: the timer fires when the test moves it, so every count below is exact.
 */
describe('BookingTimers', () => {
  let clock: TestClock;
  let temp: TempDbFile;
  let db: Db;
  let timers: BookingTimers;
  const woken: string[] = [];
  const directory = { tell: (address: { id: string }) => woken.push(address.id) } as unknown as ActorDirectory;

  const dueBookings = (prefix: string, count: number, wakeAt: number) => {
    const insert = db.prepare(
      `INSERT INTO bookings (id, customer_id, vehicle_id, status, created_at, expires_at, wake_at, updated_at) VALUES (?, 'c', 'v', 'CONFIRMED', 0, ?, ?, 0)`,
    );
    db.transaction(() => {
      for (let index = 0; index < count; index += 1) insert.run(`${prefix}-${index}`, wakeAt, wakeAt);
    })();
  };
  /** The journal's commit listener, as for a confirmation whose unlock deadline is already past. */
  const overdueConfirmationCommitted = () =>
    timers.onCommit([
      { position: 1, persistenceKey: 'booking/new-0', sequenceNumber: 3, eventType: 'BookingConfirmed', data: { type: 'BookingConfirmed', expiresAt: clock.now() - 1 }, tags: [], traceId: null, spanId: null, createdAt: clock.now() },
    ]);

  afterEach(() => {
    timers?.stop();
    db?.close();
    temp?.cleanup();
    woken.length = 0;
  });

  it('wakes a backlog larger than one batch in consecutive batches, not one batch per deadline', async () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    clock = testClock();
    dueBookings('late', 1200, clock.now() - 60_000);
    timers = new BookingTimers(db, directory, createLogger('silent'), clock);
    timers.start();
    expect(woken).toHaveLength(500);
    // The next batch follows after the minimum delay (50 ms), not at the next deadline.
    clock.advance(50);
    expect(woken).toHaveLength(1000);
    clock.advance(50);
    expect(woken).toHaveLength(1200);
    expect(new Set(woken).size).toBe(1200);
  });

  it('does not let bookings still due after their wake-up (failing compensations) crowd out new deadlines', async () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    clock = testClock();
    dueBookings('stuck', 600, clock.now() - 60_000);
    timers = new BookingTimers(db, directory, createLogger('silent'), clock);
    timers.start();
    clock.advance(50);
    expect(woken).toHaveLength(600);

    // Their wake_at stays in the past (their compensation keeps failing); five new bookings fall due.
    dueBookings('new', 5, clock.now() - 1);
    overdueConfirmationCommitted();
    clock.advance(50);
    expect(woken.filter((id) => id.startsWith('new-'))).toHaveLength(5);
    // And the stuck ones were not woken again before their refire delay (2 s after their wake-up)...
    expect(woken.filter((id) => id.startsWith('stuck-'))).toHaveLength(600);
    clock.advance(1_850);
    expect(woken.filter((id) => id.startsWith('stuck-'))).toHaveLength(600);
    // ...and were at it: a wake-up is at least once.
    clock.advance(100);
    expect(woken.filter((id) => id.startsWith('stuck-'))).toHaveLength(1200);
  });

  it('wakes a booking whose deadline was already past when its event committed (a 1 ms window), without waiting for another deadline', () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    clock = testClock();
    timers = new BookingTimers(db, directory, createLogger('silent'), clock);
    timers.start();
    // A later deadline is armed; the overdue one must not wait for it.
    dueBookings('later', 1, clock.now() + 60_000);
    timers.onCommit([{ position: 1, persistenceKey: 'booking/later-0', sequenceNumber: 1, eventType: 'BookingConfirmed', data: { type: 'BookingConfirmed', expiresAt: clock.now() + 60_000 }, tags: [], traceId: null, spanId: null, createdAt: clock.now() }]);
    dueBookings('new', 1, clock.now() - 1);
    overdueConfirmationCommitted();
    clock.advance(50);
    expect(woken).toEqual(['new-0']);
    // Still due (nothing here records its expiry), it is woken again every 2 s; the later one at its deadline.
    clock.advanceTo(clock.now() + 60_000);
    expect(woken.filter((id) => id === 'later-0')).toHaveLength(1);
    expect(new Set(woken)).toEqual(new Set(['new-0', 'later-0']));
  });
});
