import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../helpers/free-port.js';
import { startKafkaForTest, stopKafkaForTest, type KafkaTestBroker } from '../../helpers/kafka.js';
import { REPO_ROOT } from './build.js';

/**
 * The harness's own Kafka broker (scripts/kafka.mjs on free ports, fresh data): it is stopped and
 * started again during the run, which must never happen to a broker other tests or people share.
 */
export interface PrivateKafka {
  readonly brokers: readonly string[];
  readonly running: boolean;
  /** SIGTERM; returns once the port is closed. */
  stop(): Promise<void>;
  /** Same data, same ports; returns once clients can fetch metadata. */
  start(): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * Where the broker's jars are: KAFKA_LIB, else the folder of the broker `npm test` started
 * (KAFKA_TEST_HOME, default .kafka/test) when it has them, else .kafka/dev/lib (fetched on first use).
 */
export function kafkaLib(): string {
  if (process.env.KAFKA_LIB) return process.env.KAFKA_LIB;
  const testLib = join(process.env.KAFKA_TEST_HOME ?? join(REPO_ROOT, '.kafka', 'test'), 'lib');
  return existsSync(testLib) ? testLib : join(REPO_ROOT, '.kafka', 'dev', 'lib');
}

export async function startPrivateKafka(home: string): Promise<PrivateKafka> {
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const broker: KafkaTestBroker = { port, controllerPort, home, lib: kafkaLib(), brokers: [`127.0.0.1:${port}`] };
  let running = false;
  const stop = async (): Promise<void> => {
    await stopKafkaForTest(broker);
    running = false;
  };
  process.once('exit', () => {
    // A detached JVM outlives us otherwise; `dispose` is the normal way out.
    if (!running) return;
    const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controllerPort), KAFKA_HOME: home, KAFKA_LIB: broker.lib };
    spawnSync('node', [join(REPO_ROOT, 'scripts', 'kafka.mjs'), 'stop'], { env, stdio: 'ignore' });
  });
  await startKafkaForTest(broker, { fresh: true });
  running = true;
  return {
    brokers: broker.brokers,
    get running() {
      return running;
    },
    stop,
    start: async () => {
      await startKafkaForTest(broker);
      running = true;
    },
    dispose: async () => {
      await stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
