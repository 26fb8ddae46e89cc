/**
 * Which journal events leave the process, and on which Kafka topic (docs/contract.md, "Kafka"). The
 * runtime tags an event `public` exactly when this catalog knows its type, so adding a line here is
 * what publishes a new event type: a versioned decision, not a detail.
 */
export const TOPIC_BY_EVENT_TYPE = {
  BookingConfirmed: 'booking.created',
  BookingCancelled: 'booking.cancelled',
  BookingCompleted: 'booking.completed',
  BookingExpired: 'booking.expired',
  VehicleUnlocked: 'vehicle.unlocked',
  VehicleLocked: 'vehicle.locked',
} as const satisfies Readonly<Record<string, string>>;

export type PublicEventType = keyof typeof TOPIC_BY_EVENT_TYPE;
export type EventTopic = (typeof TOPIC_BY_EVENT_TYPE)[PublicEventType];

export const ALL_TOPICS: readonly EventTopic[] = [...new Set(Object.values(TOPIC_BY_EVENT_TYPE))];

export function isPublicEventType(type: string): type is PublicEventType {
  return Object.hasOwn(TOPIC_BY_EVENT_TYPE, type);
}

/** The topic of a public event type; `undefined` for an event that stays inside the process. */
export function topicOf(type: string): EventTopic | undefined {
  return isPublicEventType(type) ? TOPIC_BY_EVENT_TYPE[type] : undefined;
}
