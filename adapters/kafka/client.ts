import { Kafka } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';
import { kafkaLogLevel, pinoLogCreator } from './logging.js';
import { keepTransactionCoordinators } from './coordinator-cache.js';
import { quietIdleConnections } from './idle-connections.js';

export interface KafkaClientOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: Logger;
  /** TCP connect timeout per broker. kafkajs' default (1 s) is fine on a LAN. */
  readonly connectionTimeoutMs?: number;
  /** How long a request may wait for its response before it counts as failed. */
  readonly requestTimeoutMs?: number;
}

/**
 * One kafkajs client per process; producers and admins are made from it. kafkajs' retry defaults
 * (up to 30 s between attempts) would hide an outage inside one call; here a call gives up within a
 * few seconds, and the caller (the event relay) decides how to wait and when to try again.
 */
export function createKafkaClient(options: KafkaClientOptions): Kafka {
  keepTransactionCoordinators();
  quietIdleConnections();
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: options.connectionTimeoutMs ?? 1000,
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    logLevel: kafkaLogLevel(options.logger),
    logCreator: pinoLogCreator(options.logger),
  });
}
