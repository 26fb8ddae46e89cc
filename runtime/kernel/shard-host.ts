import type { Logger } from '../ground/logger.js';
import type { CallOf, FromShard, ShardExchange, ShardPort, ToShard } from './shard-protocol.js';

/**
 * The shard's end of the boundary: answers calls from the main thread, pushes its stats every second
 * and, while the main thread follows GET /events live, its public events as they commit. What a call
 * does is the composition root's business (server/shard.ts); this only speaks the protocol.
 */
export interface ShardHandlers<Exchange extends ShardExchange, Stats, Event> {
  /** Answers any call of the exchange (its own answer: server/shard-call-dispatch.ts keeps each to its type). */
  call(call: CallOf<Exchange>): Promise<Exchange['answer']>;
  stats(): Stats;
  /** Listener while followed, null when no longer. */
  followEvents(listener: ((events: readonly Event[]) => void) | null): void;
}

export interface ShardServer {
  /** Tells the main thread the shard serves from now on. */
  announceReady(): void;
  /**
   * Tells the main thread the shard stopped for good, before any call that was waiting on it is
   * answered (the port keeps order): they all fail as unavailable, none with its late answer.
   */
  halt(reason: string, fenced: boolean): void;
  /** Stops the stats timer and lets go of the port. */
  close(): void;
}

const STATS_EVERY_MS = 1000;

export function serveShard<Exchange extends ShardExchange, Stats, Event>(port: ShardPort, handlers: ShardHandlers<Exchange, Stats, Event>, logger: Logger): ShardServer {
  const send = (message: FromShard<Stats, Event>) => port.postMessage(message);
  const onMessage = (raw: unknown) => {
    const message = raw as ToShard<CallOf<Exchange>>;
    switch (message.t) {
      case 'call':
        handlers.call(message.call).then(
          (value) => {
            try {
              send({ t: 'result', id: message.id, ok: true, value });
            } catch (error) {
              // An answer that cannot be cloned is a bug: the caller hears it, the shard lives on.
              logger.error({ err: error, op: message.call.op }, 'shard answer could not be sent');
              send({ t: 'result', id: message.id, ok: false, error: `answer to ${message.call.op} could not be sent` });
            }
          },
          (error: unknown) => {
            logger.error({ err: error, op: message.call.op }, 'shard call failed');
            send({ t: 'result', id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) });
          },
        );
        return;
      case 'follow-events':
        handlers.followEvents(message.on ? (events) => send({ t: 'events', events }) : null);
        return;
      default:
        logger.warn({ message }, 'unknown message at the shard boundary ignored');
    }
  };
  port.on('message', onMessage);
  const timer = setInterval(() => send({ t: 'stats', stats: handlers.stats() }), STATS_EVERY_MS);
  timer.unref();
  return {
    announceReady: () => send({ t: 'ready', stats: handlers.stats() }),
    halt: (reason, fenced) => {
      port.off('message', onMessage);
      send({ t: 'halted', reason, fenced });
    },
    close: () => {
      clearInterval(timer);
      port.off('message', onMessage);
    },
  };
}
