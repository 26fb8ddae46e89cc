import type { Logger } from './logger.js';

const HOURLY = 60 * 60_000;

/** Runs `sweep` now and every hour; returns the stopper. A failing sweep is logged and tried again next hour. */
export function hourly(sweep: (stopped: () => boolean) => Promise<void>, logger: Logger, what: string): () => void {
  let stopped = false;
  const run = () => void sweep(() => stopped).catch((error: unknown) => logger.error({ err: error }, `${what} failed`));
  run();
  const timer = setInterval(run, HOURLY);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
