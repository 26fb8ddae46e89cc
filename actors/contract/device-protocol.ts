import { z } from 'zod';

/**
 * The four MQTT payloads of docs/contract.md ("MQTT"). Unknown fields are stripped, not refused: the
 * contract lets either side add fields. Everything that arrives from a device is parsed with the
 * `parse*` functions below, which never throw, so a malformed payload is logged and dropped instead
 * of crashing the handler that received it.
 */

const isoTime = z.iso.datetime({ offset: true });
const commandId = z.string().min(1).max(128);

export const deviceCommandSchema = z.object({
  commandId,
  type: z.enum(['UNLOCK', 'LOCK']),
  bookingId: z.string().min(1).max(128),
  issuedAt: isoTime,
  /** A device drops a command it receives after this instant. */
  expiresAt: isoTime,
  /** HMAC-SHA256 (base64url) with the vehicle's command key: actors/contract/command-signature.ts. */
  sig: z.string().min(1).max(128),
});
export type DeviceCommand = z.infer<typeof deviceCommandSchema>;
/** UNLOCK or LOCK: what the vehicle actor asks of a device. */
export type DeviceCommandType = DeviceCommand['type'];
/** What the vehicle actor issues; the device link signs it on the way out. */
export type UnsignedDeviceCommand = Omit<DeviceCommand, 'sig'>;

export const deviceReplySchema = z.object({
  commandId,
  type: z.enum(['UNLOCKED', 'LOCKED', 'REJECTED']),
  at: isoTime,
  reason: z.string().max(500).optional(),
});
export type DeviceReply = z.infer<typeof deviceReplySchema>;
/** UNLOCKED, LOCKED or REJECTED: how a device answers a command. */
export type DeviceReplyType = DeviceReply['type'];

export const telemetrySchema = z.object({
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  battery: z.number().min(0).max(100),
  speedKmh: z.number().min(0).max(1000),
  at: isoTime,
});
export type Telemetry = z.infer<typeof telemetrySchema>;

export const presenceSchema = z.object({
  online: z.boolean(),
  /** Absent in a last will: the broker sends it long after it was written, so a time would be wrong. */
  at: isoTime.optional(),
});
export type Presence = z.infer<typeof presenceSchema>;

/** Larger payloads are refused before JSON.parse: no legitimate message comes near this. */
export const MAX_PAYLOAD_BYTES = 4096;

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export const parseDeviceCommand = (payload: Uint8Array): ParseResult<DeviceCommand> => parseJson(payload, deviceCommandSchema);
export const parseDeviceReply = (payload: Uint8Array): ParseResult<DeviceReply> => parseJson(payload, deviceReplySchema);
export const parseTelemetry = (payload: Uint8Array): ParseResult<Telemetry> => parseJson(payload, telemetrySchema);
export const parsePresence = (payload: Uint8Array): ParseResult<Presence> => parseJson(payload, presenceSchema);

const decoder = new TextDecoder('utf-8', { fatal: true });

export function parseJson<T>(payload: Uint8Array, schema: z.ZodType<T>): ParseResult<T> {
  if (payload.byteLength > MAX_PAYLOAD_BYTES) return { ok: false, error: `payload of ${payload.byteLength} bytes exceeds ${MAX_PAYLOAD_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(payload));
  } catch (error) {
    return { ok: false, error: `not UTF-8 JSON: ${(error as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: z.prettifyError(parsed.error) };
}
