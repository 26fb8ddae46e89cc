import { installChaosHooks } from './chaos-hooks.js';
import { ConfigError, loadConfig } from './config.js';
import { DataFolderInUseError } from '../persistence/data-folder-lock.js';
import { startFleet } from './fleet-app.js';
import { ListenAddressError } from './listen-errors.js';
import { createLogger } from '../runtime/ground/logger.js';

/** `npm start`: the only place that reads process.env. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, { stdoutIsTTY: process.stdout.isTTY === true });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  if (config.auth.usingDevSecret) {
    logger.warn('FLEET_JWT_SECRET is not set: using the public development secret. Anyone can mint tokens. Never run like this in production.');
  }
  let fleet;
  try {
    fleet = await startFleet(config, { logger });
  } catch (error) {
    // A configuration that only the data or the machine can refute (FLEET_SHARDS against the recorded
    // count, a port in use, FLEET_DB held by another server): one line naming the variable, no stack.
    if (error instanceof ConfigError || error instanceof ListenAddressError || error instanceof DataFolderInUseError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  // Graceful (docs/architecture.md, "Shutdown"): HTTP stops accepting and answers what it took (at most
  // SHUTDOWN_GRACE_MS), then every shard stops its timers, relay (Kafka) and MQTT and flushes its
  // journal, then the broker and the registry close. A second signal, or a stop that hangs past the
  // shards' own grace, ends the process at once with 1: what was acknowledged is durable already.
  const hardDeadlineMs = config.shutdownGraceMs + 35_000;
  if (config.chaosHooks) installChaosHooks(fleet.shards, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without finishing the shutdown');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    setTimeout(() => {
      logger.error({ afterMs: hardDeadlineMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, hardDeadlineMs).unref();
    fleet.close().then(
      () => {
        logger.info({ signal }, 'stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error('fleetactors failed to start:', error);
  process.exit(1);
});
