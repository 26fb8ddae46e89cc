import mqtt, { type IClientOptions, type IClientPublishOptions, type IClientSubscribeOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../runtime/ground/logger.js';
import { awaitFirstConnect } from '../../runtime/ground/mqtt-first-connect.js';
import { withoutNagle } from '../../runtime/ground/mqtt-no-delay.js';
import { TopicRouter, isWildcard, type MessageHandler, type Registration } from './topic-router.js';

export { MqttConnectError } from '../../runtime/ground/mqtt-first-connect.js';
export type { MessageHandler } from './topic-router.js';

export interface MqttConnectionOptions {
  readonly url: string;
  /** 4 = MQTT 3.1.1 (aedes), 5 = MQTT 5 (Mosquitto, EMQX, HiveMQ). */
  readonly protocolVersion: 4 | 5;
  /** Stable across reconnects: the broker keeps the session (subscriptions, queued QoS 1) under it. */
  readonly clientId: string;
  /** The server's login (MQTT_USERNAME / MQTT_PASSWORD, or the embedded broker's internal secret). */
  readonly username?: string;
  readonly password?: string;
  readonly logger: Logger;
  readonly reconnectPeriodMs?: number;
  /** How long `connect` waits for the first CONNACK, retrying while the broker does not listen yet. */
  readonly connectTimeoutMs?: number;
  /** MQTT 5 only: how long the broker keeps the session while we are away (3.1.1 keeps it until a clean connect). */
  readonly sessionExpirySeconds?: number;
  readonly keepaliveSeconds?: number;
  /**
   * Default true: start with an empty session. A previous process with the same clientId left
   * subscriptions (actors long gone) and queued replies nobody waits for anymore; only the session of
   * this process's own short disconnects is worth keeping.
   */
  readonly discardPreviousSession?: boolean;
  /**
   * Default true: `clean: false`, so QoS 1 messages queued during a short disconnect are not lost.
   * false: a clean session, for a broker that lives and dies with this process (the embedded one),
   * where a persistent session buys nothing and aedes' persistent-session path drops the client under
   * bursts ("no such packet" in its outgoing queue, seen with 500 virtual vehicles connecting).
   */
  readonly persistentSession?: boolean;
}

export interface PublishOptions {
  /** Default 1 (docs/contract.md: QoS 1). The promise resolves on PUBACK for QoS 1. */
  readonly qos?: 0 | 1;
  readonly retain?: boolean;
  /** MQTT 5 only (ignored on 3.1.1): the broker drops the message once it is this old. */
  readonly messageExpirySeconds?: number;
  /** MQTT 5 only: e.g. the commandId, so a reply can be matched without parsing. */
  readonly correlationData?: string | Buffer;
}

export type ConnectionListener = (connected: boolean) => void;
export type Unsubscribe = () => Promise<void>;

export interface MqttConnectionStats {
  readonly connected: boolean;
  /** Filters the broker has been asked to deliver (one per exact topic or wildcard). */
  readonly subscriptions: number;
  readonly messagesReceived: number;
  /** Messages that matched no handler (e.g. a late reply to a passivated actor). */
  readonly messagesUnrouted: number;
  readonly handlerErrors: number;
  readonly reconnects: number;
}

/** Topics per SUBSCRIBE packet when re-subscribing everything after a reconnect. */
const RESUBSCRIBE_CHUNK = 500;
const SUBSCRIPTION_QOS = 1;

/**
 * The process's one MQTT client and its topic router.
 *
 * Clean session is off (`clean: false`, stable clientId, MQTT 5 session expiry) so that QoS 1 replies
 * published while we are briefly disconnected are queued by the broker, and our own unacknowledged QoS 1
 * publishes are re-sent by mqtt.js after the reconnect.
 *
 * Subscriptions are re-sent after every reconnect, whatever the CONNACK's session-present flag says: a
 * broker restarted without persistence says "no session" (mqtt.js alone would cope with that), but one
 * restored from an old persistence file says "session present" while missing the subscriptions made
 * since its last save. Re-subscribing costs one SUBSCRIBE per 500 filters on MQTT 3.1.1 and one per
 * filter on MQTT 5 (each carries its subscription identifier); the other price is that retained
 * messages (vehicle status) are delivered again, which their handlers tolerate.
 */
export class MqttConnection {
  private readonly router = new TopicRouter();
  /** SUBSCRIBEs in flight, so a second handler of the same filter waits for the same SUBACK. */
  private readonly pendingSubscribes = new Map<string, Promise<void>>();
  private readonly listeners = new Set<ConnectionListener>();
  /** Filters released while disconnected: the resumed session may still deliver them. */
  private readonly orphaned = new Set<string>();
  private readonly log: Logger;
  private connected = false;
  private everConnected = false;
  /** Bumped on every CONNACK, so acknowledgements of an earlier connection do not count for this one. */
  private connectGeneration = 0;
  private closing = false;
  private warnedOffline = false;
  private counters = { messagesReceived: 0, messagesUnrouted: 0, handlerErrors: 0, reconnects: 0 };

  private constructor(
    private readonly client: MqttClient,
    readonly protocolVersion: 4 | 5,
    readonly url: string,
    logger: Logger,
    private readonly discardSession: (timeoutMs: number) => Promise<void>,
  ) {
    this.log = logger;
    // Listeners go on before the first CONNACK: a resumed session may deliver queued messages in the
    // same TCP chunk as the CONNACK.
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.properties?.subscriptionIdentifier));
    client.on('connect', (connack) => {
      withoutNagle(client);
      this.onConnect(connack.sessionPresent);
    });
    client.on('close', () => this.setConnected(false));
    client.on('error', (error) => this.onError(error));
  }

  static async connect(options: MqttConnectionOptions): Promise<MqttConnection> {
    const log = options.logger.child({ component: 'mqtt', clientId: options.clientId });
    const connectTimeout = options.connectTimeoutMs ?? 10_000;
    const base: IClientOptions = {
      clientId: options.clientId,
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
      protocolVersion: options.protocolVersion,
      connectTimeout,
      keepalive: options.keepaliveSeconds ?? 30,
      reconnectPeriod: options.reconnectPeriodMs ?? 500,
      // We re-subscribe ourselves (see the class comment); mqtt.js would skip it on session-present.
      resubscribe: false,
    };
    // MQTT 3.1.1 has no "clean start but keep the new session": connect clean once, then persistent.
    const discardSession = async (timeoutMs: number): Promise<void> => {
      const cleaner = mqtt.connect(options.url, { ...base, clean: true, reconnectPeriod: 250 });
      await awaitFirstConnect(cleaner, options.url, timeoutMs);
      await cleaner.endAsync();
    };
    const persistent = options.persistentSession ?? true;
    if (persistent && (options.discardPreviousSession ?? true)) await discardSession(connectTimeout);
    const client = mqtt.connect(options.url, {
      ...base,
      clean: !persistent,
      ...(persistent && options.protocolVersion === 5 ? { properties: { sessionExpiryInterval: options.sessionExpirySeconds ?? 300 } } : {}),
    });
    const connection = new MqttConnection(client, options.protocolVersion, options.url, log, discardSession);
    await awaitFirstConnect(client, options.url, connectTimeout);
    log.info({ url: options.url, protocolVersion: options.protocolVersion }, 'mqtt connected');
    return connection;
  }

  /** Connected, and after a reconnect every subscription acknowledged again: what /health reports. */
  get isConnected(): boolean {
    return this.connected;
  }

  /** Called with `false` when the connection drops and `true` when isConnected is again; returns a remover. */
  onConnectionChange(listener: ConnectionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): MqttConnectionStats {
    return { connected: this.connected, subscriptions: this.router.size, ...this.counters };
  }

  /** Serializes `payload` as JSON once and publishes it; QoS 1 resolves on PUBACK (after a reconnect if need be). */
  async publish(topic: string, payload: object, options: PublishOptions = {}): Promise<void> {
    await this.publishRaw(topic, Buffer.from(JSON.stringify(payload)), options);
  }

  /** As `publish`, for bytes that are already encoded (or deliberately malformed, in tests). */
  async publishRaw(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    if (isWildcard(topic)) throw new TypeError(`Cannot publish to a topic filter: ${topic}`);
    const publishOptions: IClientPublishOptions = { qos: options.qos ?? 1, retain: options.retain ?? false };
    if (this.protocolVersion === 5) {
      const properties: NonNullable<IClientPublishOptions['properties']> = {};
      if (options.messageExpirySeconds !== undefined) properties.messageExpiryInterval = Math.max(1, Math.ceil(options.messageExpirySeconds));
      if (options.correlationData !== undefined) properties.correlationData = Buffer.from(options.correlationData);
      publishOptions.properties = properties;
    }
    await this.client.publishAsync(topic, payload, publishOptions);
  }

  /**
   * Routes messages on `filter` (an exact topic or a `+`/`#` filter) to `handler` and returns the
   * function that stops it. The broker hears a SUBSCRIBE only for a filter's first handler and an
   * UNSUBSCRIBE after its last. Resolves once the broker acknowledged the subscription, so a retained
   * message is on its way; while disconnected it resolves at once and the reconnect subscribes.
   * A handler that throws or rejects is logged; other handlers and the process carry on.
   */
  async subscribe(filter: string, handler: MessageHandler): Promise<Unsubscribe> {
    if (this.closing) throw new Error('MqttConnection is closed');
    const { registration, first, subscriptionId } = this.router.add(filter, handler);
    this.orphaned.delete(filter);
    const unsubscribe: Unsubscribe = () => this.release(registration);
    let ready = this.pendingSubscribes.get(filter);
    if (first) {
      ready = this.sendSubscribe(filter, subscriptionId);
      const pending = ready;
      this.pendingSubscribes.set(filter, pending);
      void pending.then(
        () => this.pendingSubscribes.get(filter) === pending && this.pendingSubscribes.delete(filter),
        () => this.pendingSubscribes.get(filter) === pending && this.pendingSubscribes.delete(filter),
      );
    }
    try {
      await ready;
    } catch (error) {
      this.router.remove(registration);
      throw error;
    }
    return unsubscribe;
  }

  /**
   * Disconnects and ends the broker-side session: nothing should be queued for a process that is gone
   * (and with a fresh clientId per process, a 3.1.1 session would otherwise stay on the broker forever).
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.listeners.clear();
    const wasConnected = this.client.connected;
    // A clean end waits for unacknowledged QoS 1 publishes; with the broker gone that would be forever.
    let timer: NodeJS.Timeout | undefined;
    const ended = wasConnected
      ? await Promise.race([
          // MQTT 5: DISCONNECT may shorten the session expiry to 0, ending the session with the connection.
          this.client.endAsync(false, this.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}).then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
        ])
      : false;
    clearTimeout(timer);
    if (!ended) await this.client.endAsync(true);
    this.connected = false;
    if (wasConnected && this.protocolVersion === 4) {
      await this.discardSession(timeoutMs).catch((error: unknown) => this.log.debug({ err: error }, 'session not discarded on close'));
    }
  }

  private async sendSubscribe(filter: string, subscriptionId: number): Promise<void> {
    if (!this.client.connected) return;
    try {
      await this.client.subscribeAsync(filter, this.subscribeOptions(subscriptionId));
    } catch (error) {
      // A numeric code is the broker's refusal (ACL, bad filter): fail. Anything else means the
      // connection went away with the SUBSCRIBE in flight, and the reconnect will send it again.
      if (typeof (error as { code?: unknown }).code === 'number' || this.closing) throw error;
      this.log.debug({ filter, err: error }, 'subscribe interrupted, will be sent on reconnect');
    }
  }

  private async release(registration: Registration): Promise<void> {
    if (!this.router.remove(registration) || this.closing) return;
    if (!this.client.connected) {
      // The broker may still hold it in our session: unsubscribed on the next connect.
      this.orphaned.add(registration.filter);
      return;
    }
    try {
      await this.client.unsubscribeAsync(registration.filter);
    } catch (error) {
      // The broker may still deliver a few messages for it; the router drops them as unrouted.
      this.log.debug({ filter: registration.filter, err: error }, 'unsubscribe not acknowledged');
    }
  }

  private onMessage(topic: string, payload: Buffer, subscriptionIds: number | number[] | undefined): void {
    this.counters.messagesReceived += 1;
    const called = this.router.dispatch(topic, payload, this.onHandlerError, subscriptionIds);
    if (called === 0) this.counters.messagesUnrouted += 1;
  }

  private readonly onHandlerError = (error: unknown, registration: Registration): void => {
    this.counters.handlerErrors += 1;
    this.log.error({ err: error, filter: registration.filter }, 'mqtt message handler failed');
  };

  private subscribeOptions(subscriptionId: number): IClientSubscribeOptions {
    // MQTT 5: the identifier comes back on every copy, so overlapping filters are told apart (TopicRouter).
    return this.protocolVersion === 5
      ? { qos: SUBSCRIPTION_QOS, properties: { subscriptionIdentifier: subscriptionId } }
      : { qos: SUBSCRIPTION_QOS };
  }

  /**
   * On a reconnect the connection counts as up (isConnected, listeners) only once the broker has
   * acknowledged the re-subscriptions: until then a publish to one of our topics could still be lost.
   */
  private onConnect(sessionPresent: boolean): void {
    this.warnedOffline = false;
    const generation = (this.connectGeneration += 1);
    if (!this.everConnected) {
      this.everConnected = true;
      this.setConnected(true);
      return;
    }
    this.counters.reconnects += 1;
    const subscriptions = this.router.subscriptions();
    this.log.info({ sessionPresent, filters: subscriptions.length }, 'mqtt reconnected, re-subscribing');
    const acks: Array<Promise<unknown>> = [];
    if (this.protocolVersion === 5) {
      // A subscription identifier is a property of the whole SUBSCRIBE packet: one packet per filter.
      for (const { filter, subscriptionId } of subscriptions) acks.push(this.client.subscribeAsync(filter, this.subscribeOptions(subscriptionId)));
    } else {
      for (let start = 0; start < subscriptions.length; start += RESUBSCRIBE_CHUNK) {
        const chunk = subscriptions.slice(start, start + RESUBSCRIBE_CHUNK).map((subscription) => subscription.filter);
        acks.push(this.client.subscribeAsync(chunk, { qos: SUBSCRIPTION_QOS }));
      }
    }
    if (this.orphaned.size > 0) {
      const orphaned = [...this.orphaned];
      this.orphaned.clear();
      acks.push(
        this.client.unsubscribeAsync(orphaned).catch((error: unknown) => {
          // Dropped again before the UNSUBACK: try on the next connect, unless subscribed again meanwhile.
          for (const filter of orphaned) if (!this.router.has(filter)) this.orphaned.add(filter);
          throw error;
        }),
      );
    }
    void Promise.allSettled(acks).then((results) => {
      const failed = results.filter((result) => result.status === 'rejected');
      if (failed.length > 0) this.log.warn({ err: (failed[0] as PromiseRejectedResult).reason, failed: failed.length }, 're-subscribe failed');
      if (generation === this.connectGeneration && this.client.connected) this.setConnected(true);
    });
  }

  private onError(error: Error): void {
    // While the broker is away mqtt.js reports every failed reconnect attempt: warn once per outage.
    if (this.warnedOffline) {
      this.log.debug({ err: error }, 'mqtt error');
      return;
    }
    this.warnedOffline = true;
    this.log.warn({ err: error }, 'mqtt error');
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    if (!connected && !this.closing) this.log.warn('mqtt connection lost, reconnecting');
    for (const listener of this.listeners) {
      try {
        listener(connected);
      } catch (error) {
        this.log.error({ err: error }, 'connection listener failed');
      }
    }
  }
}
