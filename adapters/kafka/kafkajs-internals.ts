import { createRequire } from 'node:module';

/**
 * The prototype of one of kafkajs' internal classes (a path under `kafkajs/src/`), if the installed
 * kafkajs has it with `method` on it: what the project's kafkajs fixes patch (coordinator-cache.ts,
 * idle-connections.ts). Null for any other shape, so a fix never patches what it does not know.
 */
export function kafkajsPrototype<T extends object>(path: string, method: string): T | null {
  try {
    const require = createRequire(import.meta.url);
    const loaded = require(`kafkajs/src/${path}`) as { prototype?: Record<string, unknown> } | undefined;
    const prototype = loaded?.prototype;
    return typeof prototype?.[method] === 'function' ? (prototype as T) : null;
  } catch {
    return null;
  }
}
