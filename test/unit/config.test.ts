import { describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET } from '../../actors/contract/device-secrets.js';
import { ConfigError, loadConfig } from '../../server/config.js';

describe('loadConfig', () => {
  it('gives the documented embedded defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.http).toEqual({ host: '127.0.0.1', port: 3000, bodyLimitBytes: 65536, publicBaseUrl: null, requestTimeoutMs: 30_000, idleTimeoutMs: 60_000, keepAliveTimeoutMs: 72_000 });
    expect(config.streams).toEqual({ perToken: 4, perIp: 32 });
    expect(config.metrics).toEqual({ token: null, listener: null });
    expect(config.traceMaxSteps).toBe(200);
    expect(config.db).toEqual({ file: './data/fleet.db', synchronous: 'FULL' });
    expect(config.mqtt).toEqual({ mode: 'embedded', port: 1884, protocolVersion: 4, clientId: null });
    expect(config.kafka).toEqual({ mode: 'local' });
    expect(config.auth).toEqual({ jwtSecret: DEV_JWT_SECRET, usingDevSecret: true });
    expect(config.timing.unlockTimeoutMs).toBe(5000);
  });

  it('reads the edge limits: public base URL, socket deadlines, stream caps, the metrics token and listener', () => {
    const config = loadConfig({
      PUBLIC_BASE_URL: 'https://fleet.example.com/api/',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
      HTTP_IDLE_TIMEOUT_MS: '7000',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '3000',
      STREAMS_PER_TOKEN: '1',
      STREAMS_PER_IP: '0',
      METRICS_TOKEN: 'prometheus-scrape-token-0123',
      METRICS_PORT: '9464',
      TRACE_MAX_STEPS: '50',
    });
    expect(config.http).toMatchObject({ publicBaseUrl: 'https://fleet.example.com/api', requestTimeoutMs: 5000, idleTimeoutMs: 7000, keepAliveTimeoutMs: 3000 });
    expect(config.streams).toEqual({ perToken: 1, perIp: 0 });
    expect(config.metrics).toEqual({ token: 'prometheus-scrape-token-0123', listener: { host: '127.0.0.1', port: 9464 } });
    expect(config.traceMaxSteps).toBe(50);
    expect(() => loadConfig({ PUBLIC_BASE_URL: 'https://fleet.example.com/?x=1' })).toThrowError(/^Invalid configuration: PUBLIC_BASE_URL /);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrowError(/^Invalid configuration: METRICS_TOKEN /);
  });

  it('reads the shutdown grace period (default 20 s)', () => {
    expect(loadConfig({}).shutdownGraceMs).toBe(20_000);
    expect(loadConfig({ SHUTDOWN_GRACE_MS: '5000' }).shutdownGraceMs).toBe(5_000);
  });

  it('reads external brokers', () => {
    const config = loadConfig({ MQTT_URL: 'mqtt://127.0.0.1:1883', KAFKA_BROKERS: '127.0.0.1:19092, 127.0.0.1:19093' });
    expect(config.mqtt).toEqual({ mode: 'external', url: 'mqtt://127.0.0.1:1883', protocolVersion: 5, clientId: null });
    expect(config.kafka).toMatchObject({ mode: 'kafka', brokers: ['127.0.0.1:19092', '127.0.0.1:19093'], minInsyncReplicas: null });
  });

  it('takes the journal topic\'s min.insync.replicas, never above the replication factor', () => {
    const brokers = { KAFKA_BROKERS: '127.0.0.1:19092' };
    expect(loadConfig({ ...brokers, KAFKA_REPLICATION_FACTOR: '3', KAFKA_MIN_INSYNC_REPLICAS: '2' }).kafka).toMatchObject({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(() => loadConfig({ ...brokers, KAFKA_MIN_INSYNC_REPLICAS: '2' })).toThrowError(/^Invalid configuration: KAFKA_MIN_INSYNC_REPLICAS is 2, more than KAFKA_REPLICATION_FACTOR \(1\)/);
  });

  it.each([
    ['PORT', 'abc'],
    ['UNLOCK_TIMEOUT_MS', '-5'],
    ['KAFKA_BROKERS', 'localhost'],
    ['MQTT_URL', 'http://example'],
    ['LOG_LEVEL', 'loud'],
    ['FLEET_JWT_SECRET', 'short'],
    ['SHUTDOWN_GRACE_MS', '-1'],
  ])('names the bad variable %s', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrowError(new RegExp(`^Invalid configuration: ${variable} `));
  });

  it.each(['FLEET_JWT_SECRET', 'FLEET_DEVICE_SECRET', 'MQTT_PASSWORD'])('never echoes a bad %s, only its length', (variable) => {
    const secret = variable === 'MQTT_PASSWORD' ? 'x'.repeat(300) : 'short-secret';
    const error = (() => {
      try {
        loadConfig({ [variable]: secret, ...(variable === 'MQTT_PASSWORD' ? { MQTT_USERNAME: 'fleet' } : {}) });
      } catch (thrown) {
        return thrown as Error;
      }
      throw new Error('accepted');
    })();
    expect(error.message).toMatch(new RegExp(`^Invalid configuration: ${variable} `));
    expect(error.message).not.toContain(secret.slice(0, 8));
    expect(error.message).toContain(`${secret.length} characters, not shown`);
  });

  it('refuses a passivation shorter than the unlock wait', () => {
    expect(() => loadConfig({ UNLOCK_TIMEOUT_MS: '60000', PASSIVATE_AFTER_MS: '60000' })).toThrowError(/PASSIVATE_AFTER_MS/);
  });

  it('refuses the public development JWT secret on a non-loopback HOST, naming FLEET_JWT_SECRET', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrowError(ConfigError);
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrowError(/^Invalid configuration: FLEET_JWT_SECRET .*HOST 0\.0\.0\.0/);
    expect(() => loadConfig({ HOST: '192.168.1.10' })).toThrowError(/FLEET_JWT_SECRET/);
    expect(loadConfig({ HOST: '0.0.0.0', FLEET_JWT_SECRET: 'a-real-secret-of-enough-length' }).http.host).toBe('0.0.0.0');
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(loadConfig({ HOST: host }).http.host).toBe(host);
  });

  it('reads the MQTT security settings', () => {
    expect(loadConfig({}).mqttSecurity).toEqual({ serverLogin: null, provisioning: 'none', deviceSecret: null });
    const config = loadConfig({
      MQTT_URL: 'mqtt://127.0.0.1:18830',
      MQTT_USERNAME: 'fleet-server',
      MQTT_PASSWORD: 'pw',
      MQTT_PROVISIONING: 'dynsec',
      FLEET_DEVICE_SECRET: 'x'.repeat(32),
    });
    expect(config.mqttSecurity).toEqual({ serverLogin: { username: 'fleet-server', password: 'pw' }, provisioning: 'dynsec', deviceSecret: 'x'.repeat(32) });
  });

  it.each([
    [{ MQTT_USERNAME: 'server' }, /^Invalid configuration: MQTT_PASSWORD /],
    [{ MQTT_PASSWORD: 'pw' }, /^Invalid configuration: MQTT_USERNAME /],
    [{ MQTT_PROVISIONING: 'dynsec' }, /^Invalid configuration: MQTT_PROVISIONING /],
    [{ MQTT_PROVISIONING: 'acl' }, /^Invalid configuration: MQTT_PROVISIONING /],
    [{ FLEET_DEVICE_SECRET: 'short' }, /^Invalid configuration: FLEET_DEVICE_SECRET /],
  ])('refuses incomplete MQTT security settings %o', (env, message) => {
    expect(() => loadConfig(env)).toThrowError(message);
  });
});
