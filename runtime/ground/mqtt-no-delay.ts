import type { MqttClient } from 'mqtt';
import { Socket } from 'node:net';

/**
 * Turns Nagle's algorithm off on an mqtt.js client's socket; the server's connection calls it on every
 * `connect` (a reconnect is a new socket). MQTT's messages here are small and each waits for an answer (a command, its PUBACK, a
 * device's reply): with Nagle a small write that follows one not yet acknowledged waits for the peer's
 * delayed ACK, up to 40 ms on Linux, which was most of an unlock's round trip (bench/RESULTS.md, issue 18).
 * mqtt.js leaves the socket as Node makes it. A WebSocket stream is no `Socket` and is left alone.
 */
export function withoutNagle(client: MqttClient): void {
  const stream: unknown = client.stream;
  if (stream instanceof Socket) stream.setNoDelay(true);
}
