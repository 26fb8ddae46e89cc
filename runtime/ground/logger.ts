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
    // A request's URL may carry a token in its query (a viewer link's `?access=`, also on a mistyped
    // path that reaches no route): the value never reaches a line.
    serializers: { req: requestForLog },
  };
  if (destination === undefined && format.pretty && level !== 'silent') return pino(options, prettyTransport(format.colors));
  return pino(options, destination);
}

/** Query parameters whose values are credentials. */
const SECRET_PARAMS = /^(access|access_token|token|jwt|password|secret|key|sig)$/i;

/** `?access=eyJ…&ttl=5` → `?access=[redacted]&ttl=5`. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const params = url.slice(query + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    let name = eq < 0 ? pair : pair.slice(0, eq);
    try {
      name = decodeURIComponent(name);
    } catch {
      // a name that does not decode is shown as sent; its value is hidden below all the same
      return `${pair.slice(0, eq < 0 ? pair.length : eq)}=[redacted]`;
    }
    return eq >= 0 && SECRET_PARAMS.test(name) ? `${pair.slice(0, eq)}=[redacted]` : pair;
  });
  return `${url.slice(0, query)}?${params.join('&')}`;
}

/** What a request line shows in a log: fastify's fields, the URL's credentials redacted. */
function requestForLog(request: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }): Record<string, unknown> {
  return { method: request.method, url: request.url === undefined ? undefined : redactUrl(request.url), remoteAddress: request.ip, remotePort: request.socket?.remotePort };
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
