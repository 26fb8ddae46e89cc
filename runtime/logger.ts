import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/** One root logger per process; modules take `logger.child({ component })`, actors add `traceId`. */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'fleetactors' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Bearer tokens and payment tokens never reach a log line.
      redact: { paths: ['req.headers.authorization', '*.paymentMethod', 'paymentMethod'], censor: '[redacted]' },
    },
    destination,
  );
}
