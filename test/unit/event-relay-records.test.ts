import { describe, expect, it } from 'vitest';
import { ALL_TOPICS, TOPIC_BY_EVENT_TYPE, isPublicEventType } from '../../actors/contract/event-catalog.js';
import { aggregateOf, cloudEventId, toKafkaRecord } from '../../actors/event-relay/records.js';
import type { JournalRow } from '../../runtime/kernel/journal.js';
import { EventOutbox, type OutboxRow } from '../../actors/event-relay/outbox.js';
import { createLogger } from '../../runtime/ground/logger.js';

const row = (overrides: Partial<JournalRow> = {}): JournalRow => ({
  position: 42,
  persistenceKey: 'booking/b-1',
  sequenceNumber: 3,
  eventType: 'BookingConfirmed',
  data: { type: 'BookingConfirmed', bookingId: 'b-1', vehicleId: 'v-7', amount: 1200 },
  tags: ['public'],
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  createdAt: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
  ...overrides,
});

describe('catalog', () => {
  it('names the six public event types and their contract topics', () => {
    expect(TOPIC_BY_EVENT_TYPE).toEqual({
      BookingConfirmed: 'booking.created',
      BookingCancelled: 'booking.cancelled',
      BookingCompleted: 'booking.completed',
      BookingExpired: 'booking.expired',
      VehicleUnlocked: 'vehicle.unlocked',
      VehicleLocked: 'vehicle.locked',
    });
    expect([...ALL_TOPICS].sort()).toEqual(['booking.cancelled', 'booking.completed', 'booking.created', 'booking.expired', 'vehicle.locked', 'vehicle.unlocked']);
  });

  it('keeps internal events and inherited property names private', () => {
    expect(isPublicEventType('VehicleUnlocked')).toBe(true);
    expect(isPublicEventType('VehicleReserved')).toBe(false);
    expect(isPublicEventType('toString')).toBe(false);
    expect(isPublicEventType('__proto__')).toBe(false);
  });
});

describe('toKafkaRecord', () => {
  it('maps a booking event to its topic, key, JSON value and CloudEvents binary-mode headers', () => {
    const result = toKafkaRecord(row());
    expect(result).toEqual({
      ok: true,
      record: {
        topic: 'booking.created',
        key: 'b-1',
        value: '{"type":"BookingConfirmed","bookingId":"b-1","vehicleId":"v-7","amount":1200}',
        timestamp: String(Date.UTC(2025, 0, 2, 3, 4, 5, 678)),
        headers: {
          ce_specversion: '1.0',
          ce_id: 'booking/b-1:3',
          ce_type: 'dev.fleetactors.booking.created',
          ce_source: '/fleetactors/bookings/b-1',
          ce_time: '2025-01-02T03:04:05.678Z',
          ce_subject: 'b-1',
          'content-type': 'application/json',
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        },
      },
    });
  });

  it('keys vehicle events by vehicle id', () => {
    const result = toKafkaRecord(row({ persistenceKey: 'vehicle/v-7', sequenceNumber: 12, eventType: 'VehicleLocked', data: { type: 'VehicleLocked' } }));
    if (!result.ok) throw new Error(result.reason);
    expect(result.record).toMatchObject({ topic: 'vehicle.locked', key: 'v-7' });
    expect(result.record.headers).toMatchObject({ ce_id: 'vehicle/v-7:12', ce_source: '/fleetactors/vehicles/v-7', ce_subject: 'v-7', ce_type: 'dev.fleetactors.vehicle.locked' });
  });

  it('gives the same ce_id every time the same row is mapped, and different ids to different events', () => {
    const first = toKafkaRecord(row());
    const again = toKafkaRecord(row({ position: 999 }));
    const next = toKafkaRecord(row({ sequenceNumber: 4 }));
    if (!first.ok || !again.ok || !next.ok) throw new Error('not publishable');
    expect(again.record.headers.ce_id).toBe(first.record.headers.ce_id);
    expect(next.record.headers.ce_id).not.toBe(first.record.headers.ce_id);
  });

  it('prefixes the topic but not the CloudEvents type', () => {
    const result = toKafkaRecord(row(), 't-42.');
    if (!result.ok) throw new Error(result.reason);
    expect(result.record.topic).toBe('t-42.booking.created');
    expect(result.record.headers.ce_type).toBe('dev.fleetactors.booking.created');
  });

  it('omits traceparent when the row has no trace', () => {
    const result = toKafkaRecord(row({ traceId: null, spanId: null }));
    if (!result.ok) throw new Error(result.reason);
    expect(result.record.headers).not.toHaveProperty('traceparent');
  });

  it('refuses a type the catalog does not know and a key that is not <kind>/<id>', () => {
    expect(toKafkaRecord(row({ eventType: 'VehicleReserved' }))).toEqual({ ok: false, reason: 'event type VehicleReserved has no topic in the catalog' });
    expect(toKafkaRecord(row({ persistenceKey: 'b-1' })).ok).toBe(false);
    expect(toKafkaRecord(row({ persistenceKey: 'booking/' })).ok).toBe(false);
  });
});

describe('aggregateOf and cloudEventId', () => {
  it('splits at the first slash so ids may contain slashes', () => {
    expect(aggregateOf('vehicle/fleet-a/v-1')).toEqual({ kind: 'vehicle', id: 'fleet-a/v-1' });
    expect(aggregateOf('/v-1')).toBeUndefined();
    expect(cloudEventId({ persistenceKey: 'vehicle/v-1', sequenceNumber: 7 })).toBe('vehicle/v-1:7');
  });
});

describe('the outbox of cluster mode (EventOutbox)', () => {
  /** A row as the journal of record carries it: the event's JSON text, as the journal stores it. */
  const outboxRow = (journal: JournalRow): OutboxRow => ({
    key: journal.persistenceKey,
    seq: journal.sequenceNumber,
    data: JSON.stringify(journal.data),
    tags: journal.tags,
    traceId: journal.traceId,
    spanId: journal.spanId,
    createdAt: journal.createdAt,
  });

  it('builds, from a batch, exactly the records the relay publishes for its public rows, in batch order', () => {
    const outbox = new EventOutbox('c-1.', createLogger('silent'));
    const confirmed = row();
    const reserved = row({ persistenceKey: 'vehicle/v-7', sequenceNumber: 1, eventType: 'VehicleReserved', data: { type: 'VehicleReserved' }, tags: [] });
    const unlocked = row({ persistenceKey: 'vehicle/v-7', sequenceNumber: 2, eventType: 'VehicleUnlocked', data: { type: 'VehicleUnlocked', bookingId: 'b-1' }, traceId: null, spanId: null });
    const relayRecord = (journal: JournalRow) => {
      const result = toKafkaRecord(journal, 'c-1.');
      if (!result.ok) throw new Error(result.reason);
      return result.record;
    };
    expect(outbox.recordsOf([confirmed, reserved, unlocked].map(outboxRow))).toEqual([relayRecord(confirmed), relayRecord(unlocked)]);
    expect(outbox.stats().unpublishable).toBe(0);
  });

  it('skips and counts a public row that cannot become a record, as the relay does', () => {
    const outbox = new EventOutbox('', createLogger('silent'));
    const stranger = row({ eventType: 'VehicleReserved', data: { type: 'VehicleReserved' } });
    const keyless = row({ persistenceKey: 'b-1' });
    expect(outbox.recordsOf([stranger, keyless, row()].map(outboxRow))).toHaveLength(1);
    expect(outbox.stats().unpublishable).toBe(2);
  });
});
