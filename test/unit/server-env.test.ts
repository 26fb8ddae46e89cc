import { describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET } from '../../actors/contract/device-secrets.js';
import { ConfigError } from '../../server/config.js';
import { addressVariables, serverEnv } from '../../scripts/server-env.js';

describe('serverEnv (the tools find the server as npm start places it)', () => {
  it('defaults to the server defaults', () => {
    expect(serverEnv({})).toEqual({ apiUrl: 'http://127.0.0.1:3000', mqttUrl: 'mqtt://127.0.0.1:1884', mqttProtocolVersion: 4, jwtSecret: DEV_JWT_SECRET, usingDevSecret: true });
  });

  it('reads PORT, HOST and MQTT_PORT; an empty value counts as unset', () => {
    expect(serverEnv({ PORT: '4000', HOST: 'localhost', MQTT_PORT: '1999' })).toMatchObject({ apiUrl: 'http://localhost:4000', mqttUrl: 'mqtt://127.0.0.1:1999' });
    expect(serverEnv({ PORT: '', MQTT_PORT: '' })).toMatchObject({ apiUrl: 'http://127.0.0.1:3000', mqttUrl: 'mqtt://127.0.0.1:1884' });
  });

  it('reaches a wildcard HOST on loopback, and brackets IPv6', () => {
    const secret = { FLEET_JWT_SECRET: 'a-production-secret-of-some-length' };
    expect(serverEnv({ ...secret, HOST: '0.0.0.0' }).apiUrl).toBe('http://127.0.0.1:3000');
    expect(serverEnv({ ...secret, HOST: '::' }).apiUrl).toBe('http://[::1]:3000');
    expect(serverEnv({ HOST: '::1' }).apiUrl).toBe('http://[::1]:3000');
  });

  it('uses MQTT_URL and its protocol (5 by default) instead of the embedded broker', () => {
    expect(serverEnv({ MQTT_URL: 'mqtt://127.0.0.1:18830', MQTT_PORT: '1999' })).toMatchObject({ mqttUrl: 'mqtt://127.0.0.1:18830', mqttProtocolVersion: 5 });
    expect(serverEnv({ MQTT_URL: 'mqtt://127.0.0.1:18830', MQTT_PROTOCOL_VERSION: '4' }).mqttProtocolVersion).toBe(4);
  });

  it('signs with FLEET_JWT_SECRET when set', () => {
    expect(serverEnv({ FLEET_JWT_SECRET: 'a-production-secret-of-some-length' })).toMatchObject({ jwtSecret: 'a-production-secret-of-some-length', usingDevSecret: false });
  });

  it('refuses what the server refuses, naming the variable', () => {
    expect(() => serverEnv({ PORT: 'abc' })).toThrowError(ConfigError);
    expect(() => serverEnv({ PORT: 'abc' })).toThrowError(/^Invalid configuration: PORT .*"abc"/);
    expect(() => serverEnv({ MQTT_PORT: '70000' })).toThrowError(/^Invalid configuration: MQTT_PORT /);
    expect(() => serverEnv({ HOST: '0.0.0.0' })).toThrowError(/^Invalid configuration: FLEET_JWT_SECRET /);
  });

  it('ignores the variables that do not place the server', () => {
    expect(() => serverEnv({ KAFKA_BROKERS: 'not-a-broker-list' })).not.toThrow();
    expect(addressVariables({ PORT: '4000', HOST: '127.0.0.2', MQTT_PORT: '', FLEET_DB: 'x.db', MQTT_URL: 'mqtt://x' })).toEqual({ PORT: '4000', HOST: '127.0.0.2' });
  });
});
