import type { MqttClient } from 'mqtt';

export class MqttConnectError extends Error {
  override readonly name = 'MqttConnectError';
  constructor(readonly url: string, reason: string, options?: { cause?: unknown }) {
    super(`Could not connect to MQTT broker ${url}: ${reason}`, options);
  }
}

/**
 * Resolves on the client's first CONNACK. Socket errors (the broker not listening yet) are retried
 * by mqtt.js until `timeoutMs`; a refused CONNACK (bad protocol version, not authorized) fails at
 * once, because retrying cannot fix it. On failure the client is ended.
 */
export function awaitFirstConnect(client: MqttClient, url: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const finish = (error?: MqttConnectError): void => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      if (!error) {
        resolve();
        return;
      }
      client.end(true);
      reject(error);
    };
    const onConnect = (): void => finish();
    const onError = (error: Error & { code?: unknown }): void => {
      lastError = error;
      // CONNACK refusals carry a numeric return/reason code; socket errors carry strings (ECONNREFUSED).
      if (typeof error.code === 'number') finish(new MqttConnectError(url, error.message, { cause: error }));
    };
    const timer = setTimeout(
      () => finish(new MqttConnectError(url, `no CONNACK within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`, { cause: lastError })),
      timeoutMs,
    );
    client.on('connect', onConnect);
    client.on('error', onError);
  });
}
