import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../adapters/mqtt/embedded-broker.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { loadConfig } from '../../server/config.js';
import type { ShardInit } from '../../server/shard.js';
import { ShardSupervisor } from '../../server/shard-supervisor.js';

/**
 * The spare shard worker of a cluster node (server/shard-supervisor.ts, `SpareWorker`): one worker
 * thread started ahead with the shard's code loaded, which the next shard this node gains starts on.
 */
describe('a spare shard worker', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('is ready before any shard is gained, runs the next shard gained, and is made again after that start', async () => {
    const broker = await startEmbeddedBroker({ port: 0, security: 'open' });
    cleanups.push(() => broker.close());
    const config = loadConfig({ LOG_LEVEL: 'silent', FLEET_DB: ':memory:' });
    const init: ShardInit = { shard: 0, shardCount: 1, config, dbFile: ':memory:', mqttUrl: broker.url, mqttClientId: 'spare-test-s0', mqttLogin: { username: 'server', password: 'unused' }, kafkaTopicPrefix: '' };
    const supervisor = await ShardSupervisor.start({ inits: [], runtime: 'worker', spareWorker: true, logger: createLogger('silent') });
    cleanups.push(() => supervisor.close());

    await expect.poll(() => supervisor.spareThreadId, { timeout: 15_000, interval: 50 }).not.toBeNull();
    const spare = supervisor.spareThreadId;
    await supervisor.acquire(init);
    // The shard runs on the spare's thread, and answers.
    expect(supervisor.workerThreadId(0)).toBe(spare);
    expect(supervisor.link(0).state).toBe('up');
    await expect(supervisor.link(0).call({ op: 'stats' }, 5000)).resolves.toBeDefined();
    // A new spare follows, on another thread.
    expect(supervisor.spareThreadId).toBeNull();
    await expect.poll(() => supervisor.spareThreadId, { timeout: 15_000, interval: 50 }).not.toBeNull();
    expect(supervisor.spareThreadId).not.toBe(spare);
  }, 40_000);

  it('is not kept unless asked for (a single-process server)', async () => {
    const supervisor = await ShardSupervisor.start({ inits: [], runtime: 'worker', logger: createLogger('silent') });
    cleanups.push(() => supervisor.close());
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(supervisor.spareThreadId).toBeNull();
  });
});
