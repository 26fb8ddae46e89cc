import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { serveShard } from '../runtime/kernel/shard-host.js';
import type { FromShard } from '../runtime/kernel/shard-protocol.js';
import type { FleetExchange, ShardEvent, ShardStats } from './shard-calls.js';
import { createLogger } from '../runtime/ground/logger.js';
import { startShard, type ShardInit } from './shard.js';
import type { SpareWorkerData, SpareWorkerInit } from './shard-supervisor.js';

/**
 * A shard's worker thread: starts the shard from the plain data it was given and serves it over the
 * worker's port until told to stop. A shard that cannot start says why and ends its thread; the main
 * thread decides whether to try again.
 */
const port = parentPort;
if (!port) throw new Error('server/shard-worker.ts runs inside a worker thread');
const init = await shardInitOf(port, workerData as ShardInit | SpareWorkerData);
const logger = createLogger(init.config.logLevel, undefined, init.config.logFormat);

try {
  const shard = await startShard(init, { logger });
  const server = serveShard<FleetExchange, ShardStats, ShardEvent>(
    port,
    {
      ...shard.handlers,
      call: async (call) => {
        const value = await shard.handlers.call(call);
        // Stopped: let go of the port so that the thread ends once the answer is out.
        if (call.op === 'stop') setImmediate(() => server.close());
        return value;
      },
    },
    logger.child({ shard: init.shard }),
  );
  // The journal stopped: the journal of record refused a batch (cluster mode), or a WAL sync failed
  // (persistence/wal-sync.ts). The main thread hears it before any waiting call is answered; then the
  // shard closes and the thread ends (fenced: for good on this node; else the supervisor restarts it,
  // and the shard recovers from what its file holds).
  shard.onHalt(({ reason, fenced }) => {
    server.halt(reason, fenced);
    void shard
      .close()
      .catch((error: unknown) => logger.error({ err: error, shard: init.shard }, 'halted shard did not close cleanly'))
      .finally(() => {
        server.close();
        process.exit(fenced ? 0 : 1);
      });
  });
  server.announceReady();
} catch (error) {
  logger.error({ err: error, shard: init.shard }, 'shard failed to start');
  const failed: FromShard<ShardStats, ShardEvent> = { t: 'failed', error: error instanceof Error ? error.message : String(error) };
  port.postMessage(failed);
  port.close();
}

/** A spare worker (server/shard-supervisor.ts) has its code loaded already, and waits here for the shard it is to run. */
function shardInitOf(port: MessagePort, given: ShardInit | SpareWorkerData): Promise<ShardInit> {
  if (!('spare' in given)) return Promise.resolve(given);
  return new Promise((resolve) => {
    port.once('message', (message: SpareWorkerInit) => resolve(message.init));
  });
}
