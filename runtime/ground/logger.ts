import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export interface LogFormat {
  readonly pretty: boolean;
  /** Only on a terminal, and never with NO_COLOR set (https://no-color.org). */
  readonly colors: boolean;
}

const JSON_LINES: LogFormat = { pretty: false, colors: false };

/**
 * One root logger per process (and per shard thread); modules take `logger.child({ component })`,
 * actors add `traceId`. JSON lines by default. `format.pretty` (LOG_FORMAT, or stdout is a terminal)
 * writes one readable line per entry to stdout through pino-pretty as a pino transport: formatting
 * runs on the transport's own thread, never on the event loop that serves requests.
 */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream, format: LogFormat = JSON_LINES): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'fleetactors' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Bearer tokens and payment tokens never reach a log line.
    redact: { paths: ['req.headers.authorization', '*.paymentMethod', 'paymentMethod'], censor: '[redacted]' },
  };
  if (destination === undefined && format.pretty && level !== 'silent') return pino(options, prettyTransport(format.colors));
  return pino(options, destination);
}

function prettyTransport(colors: boolean): pino.DestinationStream {
  return pino.transport({
    target: 'pino-pretty',
    options: {
      destination: 1,
      colorize: colors,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      // Constant on every line of this process: noise on a terminal (JSON lines keep them).
      ignore: 'pid,hostname,service',
    },
  }) as pino.DestinationStream;
}
