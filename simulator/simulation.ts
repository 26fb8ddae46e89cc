import type { Logger } from '../runtime/logger.js';
import { ApiClient, type TokenSource } from './api-client.js';
import { startCustomers } from './customers.js';
import { startSimulatedFleet } from './fleet.js';
import { seededRandom } from './random.js';
import { buildReport, type CustomerReport, type SimulationReport } from './report.js';
import { pause } from './timing.js';

/** Everything a run is made of; `DEFAULT_SIMULATION` has the CLI's defaults for the plain values. */
export interface SimulationSettings {
  readonly apiUrl: string;
  readonly mqttUrl: string;
  readonly protocolVersion: 4 | 5;
  readonly vehicles: number;
  readonly customers: number;
  readonly durationMs: number;
  /** Register the vehicles through the API (as operator) before connecting them. */
  readonly register: boolean;
  readonly telemetryMs: number;
  readonly replyDelayMs: number;
  readonly silentRatio: number;
  readonly offlineRatio: number;
  readonly rideMs: number;
  readonly cancelRatio: number;
  readonly thinkMs: number;
  readonly idPrefix: string;
  readonly connectConcurrency: number;
  /** Same seed, same choices (vehicles picked, delays, cancellations); timing still varies. */
  readonly seed: number;
}

export const DEFAULT_SIMULATION: SimulationSettings = {
  apiUrl: 'http://127.0.0.1:3000',
  mqttUrl: 'mqtt://127.0.0.1:1884',
  protocolVersion: 4,
  vehicles: 100,
  customers: 10,
  durationMs: 30_000,
  register: true,
  telemetryMs: 1000,
  replyDelayMs: 50,
  silentRatio: 0,
  offlineRatio: 0,
  rideMs: 1000,
  cancelRatio: 0.1,
  thinkMs: 0,
  idPrefix: 'sim-',
  connectConcurrency: 50,
  seed: 1,
};

export type SimulationPhase = 'registering' | 'connecting' | 'riding' | 'stopping';

export interface SimulationProgress {
  readonly phase: SimulationPhase;
  readonly done?: number;
  readonly total?: number;
  /** During `riding`: the customers' counts so far. */
  readonly customers?: CustomerReport;
  readonly elapsedMs: number;
}

export interface SimulationOptions extends SimulationSettings {
  readonly tokens: TokenSource;
  readonly logger?: Logger;
  /** Ends the customer phase early (Ctrl-C); the run still releases every booking and reports. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SimulationProgress) => void;
  /** Period of `riding` progress reports (default 2 s). */
  readonly progressEveryMs?: number;
}

/**
 * A whole run: register and connect the vehicles, let the customers ride for `durationMs`, take the
 * vehicles offline and report. Bounded: customers stop taking new bookings at the deadline and every
 * HTTP call has a timeout, so it returns shortly after `durationMs` even against a stuck server.
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationReport> {
  const started = Date.now();
  const startedAt = new Date(started);
  const random = seededRandom(options.seed);
  const api = new ApiClient({ baseUrl: options.apiUrl });
  const progress = (update: Omit<SimulationProgress, 'elapsedMs'>) => options.onProgress?.({ ...update, elapsedMs: Date.now() - started });

  const fleet = await startSimulatedFleet({
    vehicles: options.vehicles,
    mqttUrl: options.mqttUrl,
    protocolVersion: options.protocolVersion,
    idPrefix: options.idPrefix,
    registration: options.register ? { api, operatorToken: options.tokens('sim-operator', 'operator') } : null,
    telemetryMs: options.telemetryMs,
    replyDelayMs: options.replyDelayMs,
    silentRatio: options.silentRatio,
    offlineRatio: options.offlineRatio,
    connectConcurrency: options.connectConcurrency,
    random,
    ...(options.logger && { logger: options.logger }),
    onProgress: (phase, done, total) => progress({ phase, done, total }),
  });

  let customers: CustomerReport;
  const customerStart = Date.now();
  try {
    const run = startCustomers({
      customers: options.customers,
      api,
      tokens: options.tokens,
      vehicleIds: fleet.ids,
      durationMs: options.durationMs,
      rideMs: options.rideMs,
      cancelRatio: options.cancelRatio,
      thinkMs: options.thinkMs,
      random,
      ...(options.logger && { logger: options.logger }),
      ...(options.signal && { signal: options.signal }),
    });
    // Vehicles run for the whole duration even when there are no customers (a telemetry-only run).
    const vehiclesRun = pause(options.durationMs, options.signal);
    const ticker = setInterval(() => progress({ phase: 'riding', customers: run.snapshot() }), options.progressEveryMs ?? 2000);
    try {
      customers = await run.done;
      await vehiclesRun;
    } finally {
      clearInterval(ticker);
    }
  } finally {
    progress({ phase: 'stopping' });
    await fleet.stop();
  }
  const customerPhaseS = (Date.now() - customerStart) / 1000;

  const { tokens: _tokens, logger: _logger, signal: _signal, onProgress: _onProgress, ...settings } = options;
  return buildReport({
    startedAt,
    customerPhaseS,
    totalS: (Date.now() - started) / 1000,
    options: { ...settings },
    vehicles: fleet.stats(),
    customers,
  });
}
