import type { Logger } from '../ground/logger.js';
import type { CallOf, FromShard, ShardExchange, ShardPort, ShardResult, ToShard } from './shard-protocol.js';
import { TurnBatch } from './turn-batch.js';

/** An answer waiting for the end of the turn, with its call's op (named if it cannot be sent). */
interface Answered {
  readonly result: ShardResult;
  readonly op: string;
}

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
  const postResults = (answered: Answered[]): void => {
    try {
      port.postMessage({ t: 'results', results: answered.map((one) => one.result) } satisfies FromShard<Stats, Event>);
    } catch {
      // An answer that cannot be cloned is a bug: its caller hears it, the others get theirs, the shard lives on.
      for (const { result, op } of answered) {
        try {
          port.postMessage({ t: 'results', results: [result] } satisfies FromShard<Stats, Event>);
        } catch (error) {
          logger.error({ err: error, op }, 'shard answer could not be sent');
          port.postMessage({ t: 'results', results: [{ id: result.id, ok: false, error: `answer to ${op} could not be sent` }] } satisfies FromShard<Stats, Event>);
        }
      }
    }
  };
  const results = new TurnBatch<Answered>(postResults);
  // Anything else the shard says goes after the answers given before it (a halt must not overtake them).
  const send = (message: FromShard<Stats, Event>) => {
    results.flush();
    port.postMessage(message);
  };
  const onMessage = (raw: unknown) => {
    const message = raw as ToShard<CallOf<Exchange>>;
    switch (message.t) {
      case 'calls':
        for (const { id, call } of message.calls) {
          handlers.call(call).then(
            (value) => results.add({ result: { id, ok: true, value }, op: call.op }),
            (error: unknown) => {
              logger.error({ err: error, op: call.op }, 'shard call failed');
              results.add({ result: { id, ok: false, error: error instanceof Error ? error.message : String(error) }, op: call.op });
            },
          );
        }
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
