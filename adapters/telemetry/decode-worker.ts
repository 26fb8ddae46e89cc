/**
 * piscina worker entry: decodes telemetry batches off the main thread. Loaded as decode-worker.js
 * from dist/ in production and as decode-worker.ts (through tsx) in tests; see pipeline.ts.
 */
export { decodeBatch as default } from './decode.js';
