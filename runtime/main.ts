import { installChaosHooks } from './chaos-hooks.js';
import { ConfigError, loadConfig } from './config.js';
import { startFleet } from './fleet-app.js';
import { createLogger } from './logger.js';

/** `npm start`: the only place that reads process.env. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  if (config.auth.usingDevSecret) {
    logger.warn('FLEET_JWT_SECRET is not set: using the public development secret. Anyone can mint tokens. Never run like this in production.');
  }
  let fleet;
  try {
    fleet = await startFleet(config, { logger });
  } catch (error) {
    // A configuration that only the data can refute (FLEET_SHARDS against the recorded count).
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  if (config.chaosHooks) installChaosHooks(fleet.shards, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    fleet.close().then(
      () => process.exit(0),
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
