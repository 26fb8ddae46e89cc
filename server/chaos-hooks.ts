import type { Logger } from '../runtime/ground/logger.js';
import type { ShardSupervisor } from './shard-supervisor.js';

/**
 * FLEET_CHAOS_HOOKS=on (off by default; docs/chaos.md): `kill -USR2 <pid>` ends one shard worker
 * abruptly, as a crash of that thread would, while the process and the other shards keep running. A
 * signal and not an HTTP route, so that nothing reachable over the network can do it. The shards are
 * taken in turn (0, 1, …), so that a run of N signals hits every shard.
 */
export function installChaosHooks(shards: ShardSupervisor, logger: Logger): void {
  let next = 0;
  logger.warn('FLEET_CHAOS_HOOKS is on: SIGUSR2 crashes a shard worker. Never set it in production.');
  process.on('SIGUSR2', () => {
    const shard = next % shards.count;
    next += 1;
    logger.warn({ shard }, 'chaos hook: crashing a shard worker (SIGUSR2)');
    shards.crash(shard).catch((error: unknown) => logger.error({ err: error, shard }, 'chaos hook: the shard could not be crashed'));
  });
}
