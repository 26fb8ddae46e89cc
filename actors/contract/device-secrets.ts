import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The pure cryptography behind device logins (no I/O, no state).
 *
 * A device password is 128+ random bits, so a fast keyed hash is enough to store it: nobody can
 * brute-force the input, and a stolen hash without the pepper is useless. A slow password hash (scrypt,
 * bcrypt) would cost seconds of CPU per thousand logins, minutes when 15,000 vehicles reconnect at
 * once after a broker restart.
 */

/** 24 random bytes = 192 bits, base64url (32 characters). */
export function newDevicePassword(): string {
  return randomBytes(24).toString('base64url');
}

export function hmac(key: string | Buffer, message: string): Buffer {
  return createHmac('sha256', key).update(message, 'utf8').digest();
}

/** What the credential store keeps: HMAC-SHA256(pepper, password), base64url. */
export function hashDevicePassword(pepper: Buffer, password: string): string {
  return hmac(pepper, `device-password:${password}`).toString('base64url');
}

export function verifyDevicePassword(pepper: Buffer, password: string, storedHash: string): boolean {
  const actual = Buffer.from(hashDevicePassword(pepper, password), 'base64url');
  const expected = Buffer.from(storedHash, 'base64url');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Constant-time comparison of two strings of any length (the server's own password). */
export function safeEqual(a: string, b: string): boolean {
  const left = hmac('compare', a);
  const right = hmac('compare', b);
  return timingSafeEqual(left, right);
}

/**
 * The password of a `FLEET_SEED` demo vehicle, derived from the public development secret so that
 * `npm run sim` can log in without secrets copied by hand. Only ever valid while the server runs with
 * that development secret (the credential store gets these only then).
 */
export function demoVehiclePassword(devSecret: string, vehicleId: string): string {
  return hmac(devSecret, `demo-vehicle:${vehicleId}`).toString('base64url');
}

/** FLEET_DEVICE_SECRET when set; otherwise derived from the JWT secret, so a dev run needs nothing. */
export function deviceSecretFrom(configured: string | undefined, jwtSecret: string): string {
  return configured ?? hmac(jwtSecret, 'device-secret').toString('base64url');
}

/** Keys the credential hashes; derived so that one secret (FLEET_DEVICE_SECRET) is all there is to keep. */
export function passwordPepper(deviceSecret: string): Buffer {
  return hmac(deviceSecret, 'credential-pepper');
}

/** The public development secret (FLEET_JWT_SECRET unset): demo vehicles' credentials derive from it. */
export const DEV_JWT_SECRET = 'fleetactors-dev-secret-do-not-use-in-production';
