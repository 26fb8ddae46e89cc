import { describe, expect, it } from 'vitest';
import { canonicalCommand, deriveCommandKey, signCommand, verifyCommandSignature } from '../../actors/contract/command-signature.js';
import { demoDeviceCredentials } from '../../actors/contract/demo-credentials.js';
import { isReservedClientId, mayPublish, maySubscribe, mayUseClientId, SERVER_IDENTITY, type DeviceIdentity } from '../../adapters/mqtt/device-auth.js';
import { MAX_DEVICE_CLOCK_SKEW_MS, trustedDeviceTime } from '../../actors/contract/device-clock.js';
import { hashDevicePassword, newDevicePassword, passwordPepper, verifyDevicePassword } from '../../actors/contract/device-secrets.js';
import { CredentialStore } from '../../persistence/credential-store.js';
import { openDatabase } from '../../persistence/sqlite.js';
import { MessageKind, decodeBatch } from '../../adapters/telemetry/decode.js';

const a: DeviceIdentity = { kind: 'vehicle', id: 'car-a' };

describe('device-auth: who may publish and subscribe what', () => {
  it.each([
    ['fleet/vehicles/car-a/replies', true],
    ['fleet/vehicles/car-a/telemetry', true],
    ['fleet/vehicles/car-a/status', true],
    ['fleet/vehicles/car-a/commands', false],
    ['fleet/vehicles/car-b/replies', false],
    ['fleet/vehicles/car-b/status', false],
    ['fleet/vehicles/car-a/status/extra', false],
    ['$SYS/broker/clients', false],
    ['anything/else', false],
  ])('vehicle car-a publishing on %s → %s', (topic, allowed) => {
    expect(mayPublish(a, topic)).toBe(allowed);
  });

  it.each([
    ['fleet/vehicles/car-a/commands', true],
    ['fleet/vehicles/car-b/commands', false],
    ['fleet/vehicles/+/commands', false],
    ['fleet/vehicles/car-a/#', false],
    ['fleet/#', false],
    ['#', false],
    ['$SYS/#', false],
    ['fleet/vehicles/car-a/replies', false],
  ])('vehicle car-a subscribing to %s → %s', (filter, allowed) => {
    expect(maySubscribe(a, filter)).toBe(allowed);
  });

  it('lets the server publish commands and read everything, but not publish on $ topics', () => {
    expect(mayPublish(SERVER_IDENTITY, 'fleet/vehicles/car-a/commands')).toBe(true);
    expect(mayPublish(SERVER_IDENTITY, '$SYS/x')).toBe(false);
    expect(maySubscribe(SERVER_IDENTITY, '#')).toBe(true);
  });

  it('binds a vehicle to its own client id and keeps the server prefix for server logins, any number of them', () => {
    expect(mayUseClientId(a, 'car-a', 'fleetactors')).toBe(true);
    expect(mayUseClientId(a, 'car-b', 'fleetactors')).toBe(false);
    expect(mayUseClientId({ kind: 'vehicle', id: 'fleetactors-s0' }, 'fleetactors-s0', 'fleetactors')).toBe(false);
    for (const id of ['fleetactors', 'fleetactors-s0', 'fleetactors-s7', 'fleetactors-1a2b3c4d']) {
      expect(isReservedClientId(id, 'fleetactors')).toBe(true);
      expect(mayUseClientId(SERVER_IDENTITY, id, 'fleetactors')).toBe(true);
    }
    expect(isReservedClientId('fleetactorsx', 'fleetactors')).toBe(false);
  });
});

describe('device secrets', () => {
  const pepper = passwordPepper('d'.repeat(32));

  it('issues 192-bit passwords and verifies only the right one against its hash', () => {
    const password = newDevicePassword();
    expect(Buffer.from(password, 'base64url')).toHaveLength(24);
    expect(newDevicePassword()).not.toBe(password);
    const hash = hashDevicePassword(pepper, password);
    expect(hash).not.toContain(password);
    expect(verifyDevicePassword(pepper, password, hash)).toBe(true);
    expect(verifyDevicePassword(pepper, `${password}x`, hash)).toBe(false);
    expect(verifyDevicePassword(passwordPepper('e'.repeat(32)), password, hash)).toBe(false);
    expect(verifyDevicePassword(pepper, password, 'short')).toBe(false);
  });

  it('derives demo credentials deterministically per vehicle', () => {
    expect(demoDeviceCredentials('demo-0001')).toEqual(demoDeviceCredentials('demo-0001'));
    expect(demoDeviceCredentials('demo-0001').password).not.toBe(demoDeviceCredentials('demo-0002').password);
  });
});

describe('command signatures', () => {
  const key = deriveCommandKey('s'.repeat(32), 'car-a');
  const command = { commandId: 'c-1', type: 'UNLOCK' as const, bookingId: 'b-1', issuedAt: '2025-01-01T10:00:00.000Z', expiresAt: '2025-01-01T10:00:05.000Z' };
  const signed = { ...command, sig: signCommand(key, 'car-a', command) };

  it('verifies with the vehicle\'s key and fails on any changed field, another vehicle or another key', () => {
    expect(verifyCommandSignature(key, 'car-a', signed)).toBe(true);
    for (const change of [{ commandId: 'c-2' }, { type: 'LOCK' as const }, { bookingId: 'b-2' }, { issuedAt: '2025-01-01T10:00:01.000Z' }, { expiresAt: '2099-01-01T00:00:00.000Z' }]) {
      expect(verifyCommandSignature(key, 'car-a', { ...signed, ...change }), JSON.stringify(change)).toBe(false);
    }
    expect(verifyCommandSignature(key, 'car-b', signed)).toBe(false);
    expect(verifyCommandSignature(deriveCommandKey('s'.repeat(32), 'car-b'), 'car-a', signed)).toBe(false);
    expect(verifyCommandSignature(key, 'car-a', { ...signed, sig: 'AAAA' })).toBe(false);
  });

  it('has an unambiguous canonical form', () => {
    expect(canonicalCommand('car-a', { ...command, commandId: 'c","x' })).not.toBe(canonicalCommand('car-a', { ...command, bookingId: `x","${command.bookingId}` }));
  });
});

describe('device clock', () => {
  const now = Date.parse('2025-06-01T12:00:00.000Z');
  it('keeps the past, clamps a small skew ahead to now, refuses the far future', () => {
    expect(trustedDeviceTime(now - 3_600_000, now)).toBe(now - 3_600_000);
    expect(trustedDeviceTime(now + 1000, now)).toBe(now);
    expect(trustedDeviceTime(now + MAX_DEVICE_CLOCK_SKEW_MS + 1, now)).toBeNull();
    expect(trustedDeviceTime(Number.NaN, now)).toBeNull();
  });

  it('decodeBatch rejects telemetry and presence dated in the future; an empty status clears presence', () => {
    const payloads = [
      JSON.stringify({ lat: 1, lon: 1, battery: 50, speedKmh: 0, at: '2099-01-01T00:00:00.000Z' }),
      JSON.stringify({ online: false, at: '2099-01-01T00:00:00.000Z' }),
      '',
    ].map((text) => Buffer.from(text));
    const bytes = Buffer.concat(payloads);
    const ends = Uint32Array.from(payloads.map((_, index) => payloads.slice(0, index + 1).reduce((sum, payload) => sum + payload.length, 0)));
    const decoded = decodeBatch(
      { bytes: new Uint8Array(bytes), ends, kinds: Uint8Array.from([MessageKind.telemetry, MessageKind.presence, MessageKind.presence]), vehicleIds: ['v', 'w', 'x'] },
      now,
    );
    expect(decoded.telemetry).toEqual([]);
    expect(decoded.rejected).toBe(2);
    expect(decoded.presence).toEqual([{ vehicleId: 'x', online: null, at: null }]);
  });
});

describe('CredentialStore', () => {
  it('keeps one hash per vehicle in its own table; demo credentials never overwrite issued ones', () => {
    const db = openDatabase(':memory:');
    const store = new CredentialStore(db, () => 1000);
    store.put('car-a', 'hash-1');
    expect(store.get('car-a')).toEqual({ vehicleId: 'car-a', passwordHash: 'hash-1', origin: 'issued', updatedAt: 1000 });
    expect(store.putIfAbsent('car-a', 'demo-hash', 'demo')).toBe(false);
    expect(store.putIfAbsent('demo-0001', 'demo-hash', 'demo')).toBe(true);
    store.put('car-a', 'hash-2');
    expect(store.get('car-a')?.passwordHash).toBe('hash-2');
    expect(store.deleteDemoCredentials()).toBe(1);
    expect(store.get('demo-0001')).toBeUndefined();
    // A second store on the same file runs no migration twice.
    expect(new CredentialStore(db).get('car-a')?.passwordHash).toBe('hash-2');
    db.close();
  });
});
