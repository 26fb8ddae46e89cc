import { topicOf } from '../../../actors/contract/event-catalog.js';
import type { ClientRecords } from './customers.js';
import type { JournalEntry, KafkaEvidence } from './evidence.js';

/**
 * The checks of a chaos run (docs/chaos.md), pure: the clients' records, the shard journals and what
 * Kafka holds go in, one result per invariant comes out. Nothing here trusts the server's own view of
 * itself (its HTTP reads, its metrics): only what it acknowledged, what it committed and what it sent.
 */
export interface InvariantResult {
  readonly name: string;
  readonly ok: boolean;
  /** How many things were checked (bookings, events, keys, …). */
  readonly checked: number;
  /** How many broke it. */
  readonly violations: number;
  /** The first few, enough to start looking. */
  readonly examples: readonly string[];
}

export interface Verdict {
  readonly invariants: readonly InvariantResult[];
  /** Acknowledged bookings or unlocks missing from the journal, plus committed public events missing from Kafka. */
  readonly lost: number;
  readonly bookingsChecked: number;
  readonly eventsChecked: number;
  readonly kafkaDuplicates: number;
  readonly expired: number;
}

export interface CheckInput {
  readonly records: ClientRecords;
  readonly journal: readonly JournalEntry[];
  readonly kafka: readonly KafkaEvidence[];
  /** Epoch ms the journal was read at: deadlines before `checkedAt - graceMs` must have been acted on. */
  readonly checkedAt: number;
  /** Booking wake-ups are at least once, 2 s apart (docs/architecture.md); the harness allows a few. */
  readonly graceMs: number;
  /**
   * How long past its deadline a booking whose UNLOCK went unanswered (BookingUnlockUnanswered) may
   * stay confirmed while it learns whether the car opened (actors/booking/actor.ts, unlockSettleMsFor).
   */
  readonly unlockSettleMs?: number;
}

const LIVE = new Set(['REQUESTED', 'VEHICLE_RESERVED', 'CONFIRMED', 'ACTIVE']);
const STATUS_AFTER: Readonly<Record<string, string>> = {
  BookingRequested: 'REQUESTED',
  BookingVehicleReserved: 'VEHICLE_RESERVED',
  BookingConfirmed: 'CONFIRMED',
  BookingRejected: 'REJECTED',
  BookingActivated: 'ACTIVE',
  BookingCancelled: 'CANCELLED',
  BookingExpired: 'EXPIRED',
  BookingCompleted: 'COMPLETED',
};
/** What an acknowledgement promises: the booking is in one of these states, now and for ever. */
const AT_LEAST = {
  booked: new Set(['CONFIRMED', 'ACTIVE', 'COMPLETED', 'CANCELLED', 'EXPIRED']),
  unlocked: new Set(['ACTIVE', 'COMPLETED']),
  ended: new Set(['COMPLETED']),
  cancelled: new Set(['CANCELLED']),
};

interface BookingHistory {
  readonly id: string;
  readonly shard: number;
  status: string;
  vehicleId: string | null;
  /** Journal position from which it holds its vehicle, and up to which (null: still holds it). */
  holdFrom: number | null;
  holdTo: number | null;
  /** The deadline its timer must act on while it is open: confirmBy, then expiresAt. */
  deadline: number | null;
  expiredAt: number | null;
  /** The vehicle's lock or release for it came before the booking's own final event (or without one). */
  releasedByVehicle: boolean;
}

export function checkInvariants(input: CheckInput): Verdict {
  const bookings = bookingHistories(input.journal, input.unlockSettleMs ?? 0);
  const results: InvariantResult[] = [];
  let lost = 0;

  // 1. Every acknowledged booking exists, in the acknowledged state or a later one.
  {
    const bad: string[] = [];
    let missing = 0;
    for (const acked of input.records.bookings.values()) {
      const history = bookings.get(acked.id);
      const wanted = input.records.ends.has(acked.id)
        ? AT_LEAST.ended
        : input.records.cancels.has(acked.id)
          ? AT_LEAST.cancelled
          : input.records.unlocks.has(acked.id)
            ? AT_LEAST.unlocked
            : AT_LEAST.booked;
      if (!history) {
        missing += 1;
        bad.push(`${acked.id} (${acked.vehicleId}) acknowledged 201 but not in any journal`);
      } else if (!wanted.has(history.status)) {
        missing += 1;
        bad.push(`${acked.id} acknowledged as ${[...wanted].join('|')} but is ${history.status}`);
      } else if (history.vehicleId !== acked.vehicleId) {
        bad.push(`${acked.id} acknowledged for ${acked.vehicleId} but the journal says ${history.vehicleId}`);
      }
    }
    lost += missing;
    results.push(result('acknowledged bookings exist (in that state or later)', input.records.bookings.size, bad));
  }

  // 2. No vehicle held by two live bookings: per vehicle, the hold intervals (journal positions of its
  // shard: the booking and its vehicle live on the same one) never overlap. A hold ends with the
  // booking's final event or with the vehicle's own lock or release for it, whichever comes first: a
  // vehicle locked at the end of a ride is free even if a crash kept the booking from recording it.
  {
    for (const entry of input.journal) {
      if (!entry.key.startsWith('vehicle/') || (entry.type !== 'VehicleLocked' && entry.type !== 'VehicleReleased')) continue;
      const history = bookings.get(String(entry.data.bookingId));
      if (history && history.holdFrom !== null && history.holdFrom < entry.position && (history.holdTo === null || history.holdTo > entry.position)) {
        history.holdTo = entry.position;
        history.releasedByVehicle = true;
      }
    }
    const byVehicle = new Map<string, BookingHistory[]>();
    for (const history of bookings.values()) {
      if (history.holdFrom === null || history.vehicleId === null) continue;
      const list = byVehicle.get(history.vehicleId) ?? [];
      list.push(history);
      byVehicle.set(history.vehicleId, list);
    }
    const bad: string[] = [];
    for (const [vehicleId, holds] of byVehicle) {
      holds.sort((a, b) => a.holdFrom! - b.holdFrom!);
      for (let index = 1; index < holds.length; index += 1) {
        const previous = holds[index - 1]!;
        const current = holds[index]!;
        if (previous.holdTo === null || previous.holdTo > current.holdFrom!) {
          bad.push(`${vehicleId}: ${previous.id} (${previous.status}) still held it when ${current.id} got it (position ${current.holdFrom})`);
        }
      }
      const live = holds.filter((hold) => hold.holdTo === null);
      if (live.length > 1) bad.push(`${vehicleId}: ${live.length} bookings still hold it at the end: ${live.map((hold) => hold.id).join(', ')}`);
    }
    results.push(result('no vehicle held by two live bookings', byVehicle.size, bad));
  }

  // 2b. No booking left ACTIVE after its vehicle was locked for it: a ride whose end was cut short by a
  // crash must be finished by a retried end (the customers retry), or it would never be charged.
  {
    const bad: string[] = [];
    let checked = 0;
    for (const history of bookings.values()) {
      if (!history.releasedByVehicle) continue;
      checked += 1;
      if (LIVE.has(history.status)) bad.push(`${history.id} is still ${history.status}, but its vehicle ${history.vehicleId} was locked or released for it`);
    }
    results.push(result('no booking left live after its vehicle was locked or released', checked, bad));
  }

  // 2c. No booking confirmed without its payment's authorization before it, or in the same commit, on
  // its shard: the payment answers the booking once its decision is queued, and the confirmation must
  // share that commit (docs/architecture.md, "Crash points of a booking"). A confirmation durable while
  // the authorization was lost would be a ride nobody can charge.
  {
    const authorizedAt = new Map<string, number>();
    for (const entry of input.journal) {
      if (entry.key.startsWith('payment/') && entry.type === 'PaymentAuthorized') authorizedAt.set(`${entry.shard}/${entry.key.slice('payment/'.length)}`, entry.position);
    }
    const bad: string[] = [];
    let checked = 0;
    for (const entry of input.journal) {
      if (!entry.key.startsWith('booking/') || entry.type !== 'BookingConfirmed') continue;
      checked += 1;
      const bookingId = entry.key.slice('booking/'.length);
      const authorized = authorizedAt.get(`${entry.shard}/auth_${bookingId}`);
      if (authorized === undefined || authorized > entry.position) bad.push(`${bookingId} confirmed at position ${entry.position} (shard ${entry.shard}) ${authorized === undefined ? 'with no PaymentAuthorized for auth_' + bookingId : `before its PaymentAuthorized (position ${authorized})`}`);
    }
    results.push(result('no booking confirmed without its payment authorized', checked, bad));
  }

  // 3. Per key, the journal's sequence numbers are 1, 2, 3, … in position order.
  {
    const last = new Map<string, number>();
    const bad: string[] = [];
    for (const entry of input.journal) {
      const expected = (last.get(entry.key) ?? 0) + 1;
      if (entry.sequence !== expected) bad.push(`${entry.key}: sequence ${entry.sequence} where ${expected} was due (shard ${entry.shard}, position ${entry.position})`);
      last.set(entry.key, entry.sequence);
    }
    results.push(result('per-key journal sequences contiguous', last.size, bad));
  }

  // 4. Every committed public event reached Kafka: on its topic, under its key, exactly once after
  // de-duplication on ce_id, in order per key; nothing in Kafka that the journal does not have.
  const publicEvents = input.journal.filter((entry) => entry.isPublic);
  let duplicates = 0;
  {
    const byCeId = new Map<string, KafkaEvidence[]>();
    for (const record of input.kafka) {
      const id = record.ceId ?? `(no ce_id at ${record.topic}/${record.partition}@${record.offset})`;
      const list = byCeId.get(id) ?? [];
      list.push(record);
      byCeId.set(id, list);
    }
    const bad: string[] = [];
    const wanted = new Set<string>();
    let missing = 0;
    for (const entry of publicEvents) {
      const ceId = `${entry.key}:${entry.sequence}`;
      wanted.add(ceId);
      const copies = byCeId.get(ceId);
      const topic = topicOf(entry.type);
      const aggregateId = entry.key.slice(entry.key.indexOf('/') + 1);
      if (!copies) {
        missing += 1;
        bad.push(`${ceId} (${entry.type}) committed on shard ${entry.shard} but not in Kafka`);
        continue;
      }
      duplicates += copies.length - 1;
      for (const copy of copies) {
        if (copy.topic !== topic || copy.key !== aggregateId) bad.push(`${ceId} on ${copy.topic} key ${copy.key}; expected ${topic} key ${aggregateId}`);
        if (copy.value !== JSON.stringify(entry.data)) bad.push(`${ceId}: Kafka value differs from the journal's event`);
      }
    }
    for (const id of byCeId.keys()) if (!wanted.has(id)) bad.push(`${id} is in Kafka but in no journal`);
    // Order per key: in each partition's offset order, the first copy of each ce_id comes in sequence order.
    const seen = new Set<string>();
    const lastSequence = new Map<string, number>();
    const ordered = [...input.kafka].sort((a, b) => (a.topic === b.topic ? (a.partition === b.partition ? a.offset - b.offset : a.partition - b.partition) : a.topic < b.topic ? -1 : 1));
    for (const record of ordered) {
      if (record.ceId === null || seen.has(record.ceId)) continue;
      seen.add(record.ceId);
      const sequence = Number(record.ceId.slice(record.ceId.lastIndexOf(':') + 1));
      const orderKey = `${record.topic}|${record.key}`;
      const before = lastSequence.get(orderKey) ?? 0;
      if (sequence <= before) bad.push(`${record.ceId} arrived after sequence ${before} of the same key on ${record.topic}`);
      lastSequence.set(orderKey, sequence);
    }
    lost += missing;
    results.push(result('every committed public event in Kafka, once after de-duplication, in order per key', publicEvents.length, bad));
  }

  // 5. No acknowledged unlock without its vehicle.unlocked (journal and Kafka).
  {
    const unlockedInJournal = new Set(input.journal.filter((entry) => entry.type === 'VehicleUnlocked').map((entry) => String(entry.data.bookingId)));
    const unlockedInKafka = new Set<string>();
    for (const record of input.kafka) {
      if (record.topic !== 'vehicle.unlocked' || record.value === null) continue;
      const bookingId = (JSON.parse(record.value) as { bookingId?: unknown }).bookingId;
      if (typeof bookingId === 'string') unlockedInKafka.add(bookingId);
    }
    const bad: string[] = [];
    let missing = 0;
    for (const bookingId of input.records.unlocks.keys()) {
      if (!unlockedInJournal.has(bookingId)) {
        missing += 1;
        bad.push(`unlock of ${bookingId} acknowledged 200 but no VehicleUnlocked in the journal`);
      } else if (!unlockedInKafka.has(bookingId)) {
        bad.push(`unlock of ${bookingId} acknowledged 200 but no vehicle.unlocked in Kafka`);
      }
    }
    lost += missing;
    results.push(result('no acknowledged unlock without its vehicle.unlocked', input.records.unlocks.size, bad));
  }

  // 6. Reservations due to expire did expire (also when the deadline fell while the server was down).
  let expired = 0;
  {
    const bad: string[] = [];
    let due = 0;
    for (const history of bookings.values()) {
      if (history.expiredAt !== null) expired += 1;
      if (history.deadline === null) continue;
      const open = history.status === 'REQUESTED' || history.status === 'VEHICLE_RESERVED' || history.status === 'CONFIRMED';
      if (history.deadline + input.graceMs > input.checkedAt) continue;
      if (open || history.status === 'EXPIRED') due += 1;
      if (open) bad.push(`${history.id} is still ${history.status}; its deadline passed ${input.checkedAt - history.deadline} ms before the check`);
    }
    results.push(result('reservations due to expire did expire', due, bad));
  }

  // 7. A retried Idempotency-Key names one booking, whatever the crashes in between.
  {
    const bad: string[] = [];
    for (const [slot, ids] of input.records.keyed) if (ids.size > 1) bad.push(`${slot}: 201s named ${[...ids].join(', ')}`);
    results.push(result('idempotent retries reach one booking', input.records.keyed.size, bad));
  }

  // 8. Every second a vehicle stood open is inside a billed booking: per vehicle, each span from its
  // VehicleUnlocked to its VehicleLocked lies within [unlockedAt, endedAt] of a COMPLETED booking with a
  // charge (to the second), or is still open under a live booking (billed when it ends). A car open
  // under a booking that was cancelled or expired meanwhile is a free ride (issue 19).
  {
    const billed = new Map<string, { from: number; to: number; amount: number }>();
    for (const entry of input.journal) {
      if (entry.type !== 'BookingCompleted' || !entry.key.startsWith('booking/')) continue;
      const data = entry.data as { unlockedAt?: unknown; endedAt?: unknown; charge?: { amount?: unknown } };
      billed.set(entry.key.slice('booking/'.length), {
        from: typeof data.unlockedAt === 'number' ? data.unlockedAt : 0,
        to: typeof data.endedAt === 'number' ? data.endedAt : entry.createdAt,
        amount: typeof data.charge?.amount === 'number' ? data.charge.amount : 0,
      });
    }
    const spans: Array<{ vehicleId: string; bookingId: string; from: number; to: number | null }> = [];
    const open = new Map<string, (typeof spans)[number]>();
    for (const entry of input.journal) {
      if (!entry.key.startsWith('vehicle/')) continue;
      const at = typeof entry.data.at === 'number' ? entry.data.at : entry.createdAt;
      const vehicleId = entry.key.slice('vehicle/'.length);
      if (entry.type === 'VehicleUnlocked' && !open.has(vehicleId)) {
        const span = { vehicleId, bookingId: String(entry.data.bookingId), from: at, to: null };
        open.set(vehicleId, span);
        spans.push(span);
      } else if (entry.type === 'VehicleLocked' && open.has(vehicleId)) {
        open.get(vehicleId)!.to = at;
        open.delete(vehicleId);
      }
    }
    const SECOND = 1000;
    const bad: string[] = [];
    for (const span of spans) {
      const bill = billed.get(span.bookingId);
      const status = bookings.get(span.bookingId)?.status ?? 'unknown';
      if (span.to === null && LIVE.has(status)) continue;
      if (bill && bill.amount > 0 && bill.from <= span.from + SECOND && (span.to === null || bill.to >= span.to - SECOND)) continue;
      const to = span.to ?? input.checkedAt;
      bad.push(`${span.vehicleId} stood open ${Math.round((to - span.from) / SECOND)} s${span.to === null ? ' (still open)' : ''} under ${span.bookingId} (${status}) without a charge for it`);
    }
    results.push(result('every second a vehicle stood open is inside a billed booking', spans.length, bad));
  }

  return { invariants: results, lost, bookingsChecked: input.records.bookings.size, eventsChecked: publicEvents.length, kafkaDuplicates: duplicates, expired };
}

/** Each booking's story from its own journal events, in position order. */
function bookingHistories(journal: readonly JournalEntry[], unlockSettleMs: number): Map<string, BookingHistory> {
  const histories = new Map<string, BookingHistory>();
  for (const entry of journal) {
    // A hold starts with the vehicle's own reservation for the booking (the booking records it only in
    // the commit of its confirmation or rejection, one step later): a booking it names came first.
    if (entry.key.startsWith('vehicle/') && entry.type === 'VehicleReserved') {
      const reserving = histories.get(String(entry.data.bookingId));
      if (reserving) reserving.holdFrom ??= entry.position;
      continue;
    }
    if (!entry.key.startsWith('booking/')) continue;
    const id = entry.key.slice('booking/'.length);
    let history = histories.get(id);
    if (!history) {
      history = { id, shard: entry.shard, status: 'NEW', vehicleId: null, holdFrom: null, holdTo: null, deadline: null, expiredAt: null, releasedByVehicle: false };
      histories.set(id, history);
    }
    const status = STATUS_AFTER[entry.type];
    if (status !== undefined) history.status = status;
    const data = entry.data;
    if (typeof data.vehicleId === 'string') history.vehicleId = data.vehicleId;
    switch (entry.type) {
      case 'BookingRequested':
        history.deadline = typeof data.confirmBy === 'number' ? data.confirmBy : null;
        break;
      case 'BookingVehicleReserved':
        history.holdFrom ??= entry.position;
        break;
      case 'BookingConfirmed':
        history.holdFrom ??= entry.position;
        history.deadline = typeof data.expiresAt === 'number' ? data.expiresAt : null;
        break;
      case 'BookingActivated':
        history.deadline = null;
        break;
      case 'BookingUnlockUnanswered':
        // The product's rule: it waits for the device up to the settle window before it expires anyway.
        if (history.deadline !== null) history.deadline += unlockSettleMs;
        break;
      case 'BookingRejected':
      case 'BookingCancelled':
      case 'BookingExpired':
      case 'BookingCompleted':
        if (history.holdFrom !== null) history.holdTo ??= entry.position;
        if (entry.type === 'BookingExpired') history.expiredAt = typeof data.at === 'number' ? data.at : entry.createdAt;
        history.deadline = entry.type === 'BookingExpired' ? history.deadline : null;
        break;
      default:
        break;
    }
  }
  return histories;
}

function result(name: string, checked: number, bad: readonly string[]): InvariantResult {
  return { name, ok: bad.length === 0, checked, violations: bad.length, examples: bad.slice(0, 5) };
}
