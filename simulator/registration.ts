import type { Logger } from '../runtime/ground/logger.js';
import { ApiUnreachable, isRecord, type ApiClient } from './api-client.js';
import { forEachLimited } from './concurrency.js';

/** What a device is given at registration (POST /vehicles `credentials`); username = its id. */
export interface DeviceSecrets {
  readonly password: string;
  readonly commandKey: string;
}

export interface RegistrationResult {
  readonly secrets: Map<string, DeviceSecrets>;
  readonly registered: number;
  readonly alreadyRegistered: number;
  readonly failed: number;
}

/** The API cannot register anything: unreachable, or the operator token refused. */
export class RegistrationFailed extends Error {
  override readonly name = 'RegistrationFailed';
}

const TYPES = ['scooter', 'car', 'bike'] as const;

/**
 * Registers the devices through the API as an operator (POST /vehicles) and keeps the credentials it
 * answers. An id that is taken (409) gets new credentials by rotation (the old ones stop working).
 */
export async function registerVehicles(options: {
  readonly api: ApiClient;
  readonly operatorToken: string;
  readonly ids: readonly string[];
  readonly locationOf: (id: string) => { lat: number; lon: number };
  readonly concurrency: number;
  readonly logger: Logger;
  readonly onProgress?: (done: number, total: number) => void;
}): Promise<RegistrationResult> {
  const { api, operatorToken, ids, logger } = options;
  const secrets = new Map<string, DeviceSecrets>();
  let registered = 0;
  let alreadyRegistered = 0;
  let failed = 0;
  let done = 0;
  await forEachLimited(ids, options.concurrency, async (id, index) => {
    try {
      const result = await api.request('POST', '/vehicles', operatorToken, { id, type: TYPES[index % TYPES.length], location: options.locationOf(id) });
      if (result.status === 201) {
        registered += 1;
        const issued = secretsIn(result.body);
        if (issued) secrets.set(id, issued);
      } else if (result.status === 409) {
        alreadyRegistered += 1;
        const rotated = await api.request('POST', `/vehicles/${encodeURIComponent(id)}/credentials`, operatorToken);
        const issued = rotated.status === 200 ? secretsIn(rotated.body) : null;
        if (issued) secrets.set(id, issued);
        else logger.warn({ vehicleId: id, status: rotated.status, problem: rotated.problem }, 'credentials of an already registered vehicle could not be rotated');
      } else if (result.status === 401 || result.status === 403) {
        throw new RegistrationFailed(`the API refused the operator token (${result.status} ${result.problem}): sign it with the server's FLEET_JWT_SECRET`);
      } else {
        failed += 1;
        logger.warn({ vehicleId: id, status: result.status, problem: result.problem }, 'vehicle registration refused');
      }
    } catch (error) {
      if (error instanceof RegistrationFailed) throw error;
      // Unreachable for one is unreachable for all: say so once instead of once per vehicle.
      if (error instanceof ApiUnreachable && registered + alreadyRegistered === 0) throw new RegistrationFailed(`cannot register vehicles: ${error.message} (is the server running?)`, { cause: error });
      failed += 1;
      logger.warn({ vehicleId: id, error: error instanceof Error ? error.message : String(error) }, 'vehicle registration failed');
    }
    options.onProgress?.(++done, ids.length);
  });
  return { secrets, registered, alreadyRegistered, failed };
}

function secretsIn(body: unknown): DeviceSecrets | null {
  const credentials = isRecord(body) ? body.credentials : undefined;
  if (!isRecord(credentials) || typeof credentials.password !== 'string' || typeof credentials.commandKey !== 'string') return null;
  return { password: credentials.password, commandKey: credentials.commandKey };
}
