import type { Logger } from './logger.js';

export type Closer = () => Promise<void> | void;

/**
 * What a composition root opened, to be closed in reverse order: the last thing started stops first,
 * so the journal, opened first, is flushed and closed last. A closer that fails is logged and the
 * rest still run.
 */
export function closerStack(logger: Logger, what: string): { readonly closers: Closer[]; close(): Promise<void> } {
  const closers: Closer[] = [];
  return {
    closers,
    close: async () => {
      for (const closer of closers.reverse()) {
        try {
          await closer();
        } catch (error) {
          logger.error({ err: error }, `error while stopping ${what}`);
        }
      }
      closers.length = 0;
    },
  };
}
