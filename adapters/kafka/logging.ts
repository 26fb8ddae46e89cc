import { logLevel, type LogEntry, type logCreator } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';

/**
 * kafkajs logs through its own console logger by default; this routes it into our pino logger as
 * structured objects (`kafka.namespace`, `broker`, `error`, ...), under `component: kafkajs`.
 */
export function pinoLogCreator(logger: Logger): logCreator {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _logger, ...fields } = entry;
      const method = pinoMethod(level, message);
      if (!log.isLevelEnabled(method)) return;
      log[method]({ kafkaNamespace: namespace, ...fields }, message);
    };
}

type PinoMethod = 'error' | 'warn' | 'info' | 'debug';

function pinoMethod(level: logLevel, message: string): PinoMethod {
  switch (level) {
    // kafkajs logs every failed request at ERROR before it retries it (a broker restarting, a
    // coordinator still loading). Whether that is an error is for its caller to say: the relay logs
    // the send that finally failed at error level.
    case logLevel.ERROR:
      return 'warn';
    case logLevel.WARN:
      // We cap the idempotent producer's retries on purpose (adapters/kafka/producer.ts explains why);
      // kafkajs warns about it on every (re)connect.
      return message.startsWith('Limiting retries for the idempotent producer') ? 'debug' : 'warn';
    case logLevel.INFO:
      return 'info';
    default:
      return 'debug';
  }
}

/** kafkajs' own level filter, matched to the pino logger's, so it does not build entries pino drops. */
export function kafkaLogLevel(logger: Logger): logLevel {
  if (logger.isLevelEnabled('debug')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('info')) return logLevel.INFO;
  // WARN lets kafkajs' ERROR entries through too; they arrive as warnings (see pinoMethod).
  return logger.isLevelEnabled('warn') ? logLevel.WARN : logLevel.NOTHING;
}
