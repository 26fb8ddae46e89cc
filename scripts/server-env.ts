import { ConfigError, loadConfig } from '../server/config.js';

/**
 * Where the command-line tools (`npm run sim|trace|token|demo`) find the server: the same variables,
 * parsed by the same server/config.ts as `npm start`, so `PORT=4000 npm start` and
 * `PORT=4000 npm run sim` meet without flags. Flags (`--api`, `--mqtt-url`) still win.
 */

/** The variables that place the server: what the demo passes on to the server it starts. */
const ADDRESS_VARIABLES = ['PORT', 'HOST', 'MQTT_PORT'] as const;
/** Read by the clients too: an external broker, its protocol, and the secret tokens are signed with. */
const CLIENT_VARIABLES = [...ADDRESS_VARIABLES, 'MQTT_URL', 'MQTT_PROTOCOL_VERSION', 'FLEET_JWT_SECRET'] as const;

type Env = Readonly<Record<string, string | undefined>>;

export interface ServerEnv {
  /** `http://127.0.0.1:3000`: HOST and PORT, with a wildcard HOST (0.0.0.0, ::) reached on loopback. */
  readonly apiUrl: string;
  /** MQTT_URL, or the embedded broker on MQTT_PORT (it always listens on 127.0.0.1). */
  readonly mqttUrl: string;
  readonly mqttProtocolVersion: 4 | 5;
  /** FLEET_JWT_SECRET, or the public dev secret as the server uses it. */
  readonly jwtSecret: string;
  readonly usingDevSecret: boolean;
}

/** Throws ConfigError naming the variable, exactly as the server would refuse it. */
export function serverEnv(env: Env = process.env): ServerEnv {
  const config = loadConfig(pick(env, CLIENT_VARIABLES));
  const host = reachableHost(config.http.host);
  return {
    apiUrl: `http://${host}:${config.http.port}`,
    mqttUrl: config.mqtt.mode === 'external' ? config.mqtt.url : `mqtt://127.0.0.1:${config.mqtt.port}`,
    mqttProtocolVersion: config.mqtt.protocolVersion,
    jwtSecret: config.auth.jwtSecret,
    usingDevSecret: config.auth.usingDevSecret,
  };
}

/** For a tool's start: a bad variable ends it with the server's message and exit code, not a stack. */
export function serverEnvOrExit(env: Env = process.env): ServerEnv {
  try {
    return serverEnv(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(2);
  }
}

/** PORT, HOST and MQTT_PORT as set (an empty value counts as unset, as in server/config.ts). */
export function addressVariables(env: Env = process.env): Record<string, string> {
  return pick(env, ADDRESS_VARIABLES);
}

function pick(env: Env, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') picked[name] = value;
  }
  return picked;
}

function reachableHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === '0.0.0.0') return '127.0.0.1';
  if (bare === '::') return '[::1]';
  return bare.includes(':') ? `[${bare}]` : bare;
}
