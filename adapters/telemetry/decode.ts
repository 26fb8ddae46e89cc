import { trustedDeviceTime } from '../../actors/contract/device-clock.js';
import { parsePresence, parseTelemetry } from '../../actors/contract/device-protocol.js';

/**
 * Decoding and validation of one batch of raw telemetry and presence messages: pure, so the piscina
 * worker (decode-worker.ts) only wraps it and tests call it directly.
 *
 * The batch crosses the thread boundary as a few transferable arrays rather than one object per
 * message: structured clone of many small Buffers would copy each one's whole backing pool slab.
 */

export const MessageKind = { telemetry: 0, presence: 1 } as const;

export interface DecodeTask {
  /** Every payload, back to back. */
  readonly bytes: Uint8Array;
  /** `ends[i]` is the end offset of payload i in `bytes`; it starts where payload i - 1 ended. */
  readonly ends: Uint32Array;
  /** MessageKind of payload i. */
  readonly kinds: Uint8Array;
  readonly vehicleIds: readonly string[];
}

export interface TelemetryRow {
  readonly vehicleId: string;
  readonly lat: number;
  readonly lon: number;
  readonly battery: number;
  readonly speedKmh: number;
  /** Epoch milliseconds of the reading (the device's `at`). */
  readonly at: number;
}

export interface PresenceRow {
  readonly vehicleId: string;
  /** null: an operator cleared the presence (an empty retained status). */
  readonly online: boolean | null;
  /** Epoch milliseconds the device reported; null for a last will, which carries no time. */
  readonly at: number | null;
}

export interface DecodedBatch {
  /** The newest reading (greatest `at`, later arrival on a tie) of each vehicle in the batch. */
  readonly telemetry: TelemetryRow[];
  /** The last presence of each vehicle in the batch, by arrival. */
  readonly presence: PresenceRow[];
  readonly rejected: number;
  /** Valid messages replaced by a newer one of the same vehicle in this batch. */
  readonly superseded: number;
  /** The first few rejections, for a log line. */
  readonly rejections: Array<{ vehicleId: string; error: string }>;
}

const REJECTION_SAMPLES = 3;

/** `now`: the server's time, against which device timestamps are checked (actors/contract/device-clock.ts). */
export function decodeBatch(task: DecodeTask, now = Date.now()): DecodedBatch {
  const { bytes, ends, kinds, vehicleIds } = task;
  const telemetry = new Map<string, TelemetryRow>();
  const presence = new Map<string, PresenceRow>();
  const rejections: Array<{ vehicleId: string; error: string }> = [];
  let rejected = 0;
  let superseded = 0;
  let start = 0;
  for (let index = 0; index < ends.length; index += 1) {
    const end = ends[index]!;
    const payload = bytes.subarray(start, end);
    start = end;
    const vehicleId = vehicleIds[index]!;
    if (kinds[index] === MessageKind.telemetry) {
      const parsed = parseTelemetry(payload);
      if (!parsed.ok) {
        rejected += 1;
        if (rejections.length < REJECTION_SAMPLES) rejections.push({ vehicleId, error: parsed.error });
        continue;
      }
      const at = trustedDeviceTime(Date.parse(parsed.value.at), now);
      if (at === null) {
        rejected += 1;
        if (rejections.length < REJECTION_SAMPLES) rejections.push({ vehicleId, error: `reading dated ${parsed.value.at}, ahead of the server's clock` });
        continue;
      }
      const { lat, lon, battery, speedKmh } = parsed.value;
      const row: TelemetryRow = { vehicleId, lat, lon, battery, speedKmh, at };
      const previous = telemetry.get(vehicleId);
      if (previous) superseded += 1;
      if (!previous || row.at >= previous.at) telemetry.set(vehicleId, row);
    } else {
      const parsed = payload.byteLength === 0 ? ({ ok: true, value: { online: null } } as const) : parsePresence(payload);
      if (!parsed.ok) {
        rejected += 1;
        if (rejections.length < REJECTION_SAMPLES) rejections.push({ vehicleId, error: parsed.error });
        continue;
      }
      const claimed = 'at' in parsed.value && parsed.value.at !== undefined ? Date.parse(parsed.value.at) : null;
      const at = claimed === null ? null : trustedDeviceTime(claimed, now);
      if (claimed !== null && at === null) {
        rejected += 1;
        if (rejections.length < REJECTION_SAMPLES) rejections.push({ vehicleId, error: `presence dated ${new Date(claimed).toISOString()}, ahead of the server's clock` });
        continue;
      }
      if (presence.has(vehicleId)) {
        superseded += 1;
        // Re-insert so that the Map's order stays the order of the last arrivals.
        presence.delete(vehicleId);
      }
      presence.set(vehicleId, { vehicleId, online: parsed.value.online, at });
    }
  }
  return { telemetry: [...telemetry.values()], presence: [...presence.values()], rejected, superseded, rejections };
}
