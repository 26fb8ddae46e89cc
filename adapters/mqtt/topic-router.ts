/**
 * Dispatches incoming messages to handlers by topic, without a broker: MqttConnection owns one and
 * decides when a filter needs a SUBSCRIBE (first handler) or an UNSUBSCRIBE (last handler gone).
 *
 * Exact topics (a vehicle actor's `replies` and `status`) are looked up in a Map, so thousands of them
 * cost one hash lookup per message; wildcard filters (the telemetry pipeline's two) are matched after,
 * level by level. When filters overlap, a message goes to the handlers of every filter it matches.
 * QoS 1 is at-least-once, so handlers must be idempotent anyway.
 */

export type MessageHandler = (topic: string, payload: Buffer) => void | Promise<void>;

/** One `subscribe` call. Its own object, so the same function subscribed twice is removed one call at a time. */
export interface Registration {
  readonly filter: string;
  readonly handler: MessageHandler;
}

export class InvalidTopicFilterError extends Error {
  override readonly name = 'InvalidTopicFilterError';
  constructor(readonly filter: string, reason: string) {
    super(`Invalid MQTT topic filter ${JSON.stringify(filter)}: ${reason}`);
  }
}

interface FilterEntry {
  readonly filter: string;
  /** MQTT 5 subscription identifier of this filter (§3.8.2.1.2). */
  readonly subscriptionId: number;
  /** Split filter for wildcard matching; null for an exact topic. */
  readonly levels: readonly string[] | null;
  readonly registrations: Set<Registration>;
}

/** The largest MQTT 5 subscription identifier (a variable byte integer). */
const MAX_SUBSCRIPTION_ID = 268_435_455;

export class TopicRouter {
  private readonly exact = new Map<string, FilterEntry>();
  private readonly wildcards = new Map<string, FilterEntry>();
  private readonly bySubscriptionId = new Map<number, FilterEntry>();
  private lastSubscriptionId = 0;

  /**
   * Adds a handler; `first` is true when the filter had none before (time to SUBSCRIBE, with
   * `subscriptionId` on MQTT 5). Throws InvalidTopicFilterError for a malformed filter.
   */
  add(filter: string, handler: MessageHandler): { registration: Registration; first: boolean; subscriptionId: number } {
    const registration: Registration = { filter, handler };
    const wildcard = isWildcard(filter);
    const map = wildcard ? this.wildcards : this.exact;
    const existing = map.get(filter);
    if (existing) {
      existing.registrations.add(registration);
      return { registration, first: false, subscriptionId: existing.subscriptionId };
    }
    validateFilter(filter);
    const entry: FilterEntry = {
      filter,
      subscriptionId: this.nextSubscriptionId(),
      levels: wildcard ? filter.split('/') : null,
      registrations: new Set([registration]),
    };
    map.set(filter, entry);
    this.bySubscriptionId.set(entry.subscriptionId, entry);
    return { registration, first: true, subscriptionId: entry.subscriptionId };
  }

  /** Removes one registration; true when it was the filter's last (time to UNSUBSCRIBE). Idempotent. */
  remove(registration: Registration): boolean {
    const map = isWildcard(registration.filter) ? this.wildcards : this.exact;
    const entry = map.get(registration.filter);
    if (!entry || !entry.registrations.delete(registration)) return false;
    if (entry.registrations.size > 0) return false;
    map.delete(entry.filter);
    this.bySubscriptionId.delete(entry.subscriptionId);
    return true;
  }

  has(filter: string): boolean {
    return this.exact.has(filter) || this.wildcards.has(filter);
  }

  /** Every filter with at least one handler, with its subscription id: what a reconnect re-subscribes. */
  subscriptions(): Array<{ filter: string; subscriptionId: number }> {
    const all: Array<{ filter: string; subscriptionId: number }> = [];
    for (const entry of this.exact.values()) all.push({ filter: entry.filter, subscriptionId: entry.subscriptionId });
    for (const entry of this.wildcards.values()) all.push({ filter: entry.filter, subscriptionId: entry.subscriptionId });
    return all;
  }

  get size(): number {
    return this.exact.size + this.wildcards.size;
  }

  /**
   * Calls the handlers of every filter `topic` matches; a handler that throws (or rejects) is reported
   * to `onError` and the others still run. Returns how many handlers were called (0: nobody listens,
   * e.g. a reply queued for an actor that has been passivated since).
   *
   * With `subscriptionIds` (MQTT 5: the broker names the subscriptions a copy is for) only those
   * filters' handlers are called, so overlapping filters do not see one publish twice although
   * Mosquitto sends one copy per matching subscription.
   */
  dispatch(
    topic: string,
    payload: Buffer,
    onError: (error: unknown, registration: Registration) => void,
    subscriptionIds?: number | readonly number[],
  ): number {
    if (subscriptionIds !== undefined) return this.dispatchToSubscriptions(topic, payload, onError, subscriptionIds);
    let called = 0;
    const exact = this.exact.get(topic);
    if (exact) called += invokeAll(exact, topic, payload, onError);
    if (this.wildcards.size > 0) {
      const levels = topic.split('/');
      for (const entry of this.wildcards.values()) {
        if (matchesLevels(entry.levels!, levels)) called += invokeAll(entry, topic, payload, onError);
      }
    }
    return called;
  }

  private dispatchToSubscriptions(
    topic: string,
    payload: Buffer,
    onError: (error: unknown, registration: Registration) => void,
    subscriptionIds: number | readonly number[],
  ): number {
    let called = 0;
    for (const id of typeof subscriptionIds === 'number' ? [subscriptionIds] : subscriptionIds) {
      const entry = this.bySubscriptionId.get(id);
      // A stale id (filter released while the copy was in flight) or a foreign one: not ours to deliver.
      if (entry && (entry.levels === null ? entry.filter === topic : matchesLevels(entry.levels, topic.split('/')))) {
        called += invokeAll(entry, topic, payload, onError);
      }
    }
    return called;
  }

  private nextSubscriptionId(): number {
    do {
      this.lastSubscriptionId = this.lastSubscriptionId >= MAX_SUBSCRIPTION_ID ? 1 : this.lastSubscriptionId + 1;
    } while (this.bySubscriptionId.has(this.lastSubscriptionId));
    return this.lastSubscriptionId;
  }
}

function invokeAll(
  entry: FilterEntry,
  topic: string,
  payload: Buffer,
  onError: (error: unknown, registration: Registration) => void,
): number {
  let called = 0;
  for (const registration of entry.registrations) {
    called += 1;
    invoke(registration, topic, payload, onError);
  }
  return called;
}

function invoke(
  registration: Registration,
  topic: string,
  payload: Buffer,
  onError: (error: unknown, registration: Registration) => void,
): void {
  try {
    const result = registration.handler(topic, payload);
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).catch((error: unknown) => onError(error, registration));
    }
  } catch (error) {
    onError(error, registration);
  }
}

export function isWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** MQTT 3.1.1 §4.7: `+` is a whole level, `#` a whole last level; topics are not empty. */
export function validateFilter(filter: string): void {
  if (filter.length === 0) throw new InvalidTopicFilterError(filter, 'empty');
  if (filter.includes('\u0000')) throw new InvalidTopicFilterError(filter, 'contains NUL');
  const levels = filter.split('/');
  for (let index = 0; index < levels.length; index += 1) {
    const level = levels[index]!;
    if (level.includes('#') && (level !== '#' || index !== levels.length - 1)) {
      throw new InvalidTopicFilterError(filter, '`#` must be the whole last level');
    }
    if (level.includes('+') && level !== '+') throw new InvalidTopicFilterError(filter, '`+` must be a whole level');
  }
}

/** Whether `topic` (no wildcards) matches `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  return matchesLevels(filter.split('/'), topic.split('/'));
}

function matchesLevels(filter: readonly string[], topic: readonly string[]): boolean {
  // §4.7.2: `$SYS/...` and other `$` topics are not matched by a filter starting with a wildcard.
  if (topic[0]?.startsWith('$') && (filter[0] === '+' || filter[0] === '#')) return false;
  for (let index = 0; index < filter.length; index += 1) {
    const level = filter[index]!;
    if (level === '#') return true;
    if (index >= topic.length) return false;
    if (level !== '+' && level !== topic[index]) return false;
  }
  return filter.length === topic.length;
}
