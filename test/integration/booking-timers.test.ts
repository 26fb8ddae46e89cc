import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { BookingTimers } from '../../runtime/booking-timers.js';
import type { ActorDirectory } from '../../runtime/kernel/directory.js';
import { createLogger } from '../../runtime/logger.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/** The timer alone, on a real `bookings` table; the directory only records whom it woke. */
describe('BookingTimers', () => {
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
      { position: 1, persistenceKey: 'booking/new-0', sequenceNumber: 3, eventType: 'BookingConfirmed', data: { type: 'BookingConfirmed', expiresAt: Date.now() - 1 }, tags: [], traceId: null, spanId: null, createdAt: Date.now() },
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
    dueBookings('late', 1200, Date.now() - 60_000);
    timers = new BookingTimers(db, directory, createLogger('silent'));
    timers.start();
    await waitFor(() => woken.length === 1200, { timeoutMs: 5000, what: 'all 1200 overdue bookings woken' });
    expect(new Set(woken).size).toBe(1200);
  });

  it('does not let bookings still due after their wake-up (failing compensations) crowd out new deadlines', async () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    dueBookings('stuck', 600, Date.now() - 60_000);
    timers = new BookingTimers(db, directory, createLogger('silent'));
    timers.start();
    await waitFor(() => woken.length === 600, { timeoutMs: 5000, what: 'the 600 stuck bookings woken once' });

    // Their wake_at stays in the past (their compensation keeps failing); five new bookings fall due.
    dueBookings('new', 5, Date.now() - 1);
    overdueConfirmationCommitted();
    await waitFor(() => woken.filter((id) => id.startsWith('new-')).length === 5, { timeoutMs: 5000, what: 'the 5 new bookings woken' });
    // And the stuck ones were not woken again before their refire delay.
    expect(woken.filter((id) => id.startsWith('stuck-'))).toHaveLength(600);
  });
});
