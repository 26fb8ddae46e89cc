import { randomUUID } from 'node:crypto';
import type { Logger } from '../../runtime/ground/logger.js';
import type { MqttConnection } from './connection.js';
import { commandsTopic, repliesTopic, statusTopic, telemetryTopic } from '../../actors/contract/device-topics.js';

/**
 * Creates and updates device logins on the broker itself, when the broker keeps them (Mosquitto with
 * the dynamic-security plugin). The embedded broker asks the credential store directly instead.
 */
export interface DeviceProvisioner {
  /** The vehicle's client (username = client id = vehicle id) and its role, with this password. */
  provision(vehicleId: string, password: string): Promise<void>;
  /** A new password; open sessions of the vehicle are closed, so the old password stops working at once. */
  rotate(vehicleId: string, password: string): Promise<void>;
}

/** MQTT_PROVISIONING=none: the broker's logins are managed elsewhere (password_file + acl_file, docs/mqtt-security.md). */
export const noProvisioning: DeviceProvisioner = {
  provision: async () => undefined,
  rotate: async () => undefined,
};

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;

export type DynsecCommand = { readonly command: string } & Record<string, unknown>;

export interface DynsecResponse {
  readonly command: string;
  readonly error?: string;
  readonly correlationData?: string;
  readonly data?: unknown;
}

export class DynsecError extends Error {
  override readonly name = 'DynsecError';
  constructor(readonly command: string, readonly reason: string) {
    super(`dynamic-security ${command} failed: ${reason}`);
  }
}

/** The role that holds one vehicle's ACLs: the same rules as adapters/mqtt/device-auth.ts. */
export const vehicleRoleName = (vehicleId: string): string => `vehicle-${vehicleId}`;

export function vehicleRoleAcls(vehicleId: string): ReadonlyArray<Record<string, unknown>> {
  return [
    { acltype: 'publishClientSend', topic: repliesTopic(vehicleId), allow: true },
    { acltype: 'publishClientSend', topic: telemetryTopic(vehicleId), allow: true },
    // The last will is checked against this at CONNECT: a will on another vehicle's status is refused.
    { acltype: 'publishClientSend', topic: statusTopic(vehicleId), allow: true },
    // Literal, not pattern: the vehicle's only subscription is exactly its commands topic.
    { acltype: 'subscribeLiteral', topic: commandsTopic(vehicleId), allow: true },
  ];
}

/**
 * Request/response over `$CONTROL/dynamic-security/v1`: one PUBLISH carries a batch of commands, each
 * tagged with a correlationData that the plugin echoes in its response.
 */
export class DynsecClient {
  private readonly waiting = new Map<string, (response: DynsecResponse) => void>();
  private subscribed: Promise<unknown> | null = null;

  constructor(
    private readonly mqtt: MqttConnection,
    private readonly timeoutMs = 5000,
  ) {}

  /** Every command's response, in order; a response with `error` is returned, not thrown. */
  async send(commands: readonly DynsecCommand[]): Promise<DynsecResponse[]> {
    this.subscribed ??= this.mqtt.subscribe(DYNSEC_RESPONSE_TOPIC, (_topic, payload) => this.onResponse(payload));
    await this.subscribed;
    const tagged = commands.map((command) => ({ ...command, correlationData: randomUUID() }));
    const answers = tagged.map(
      (command) =>
        new Promise<DynsecResponse>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.waiting.delete(command.correlationData);
            reject(new DynsecError(command.command, `no response within ${this.timeoutMs} ms (is the plugin loaded, may ${DYNSEC_TOPIC} be used?)`));
          }, this.timeoutMs);
          this.waiting.set(command.correlationData, (response) => {
            clearTimeout(timer);
            resolve(response);
          });
        }),
    );
    try {
      await this.mqtt.publish(DYNSEC_TOPIC, { commands: tagged }, { qos: 1 });
    } catch (error) {
      for (const command of tagged) this.waiting.delete(command.correlationData);
      throw error;
    }
    return Promise.all(answers);
  }

  /** As `send`, throwing the first error that `tolerate` does not accept. */
  async run(commands: readonly DynsecCommand[], tolerate: (response: DynsecResponse) => boolean = () => false): Promise<DynsecResponse[]> {
    const responses = await this.send(commands);
    const failed = responses.find((response) => response.error !== undefined && !tolerate(response));
    if (failed) throw new DynsecError(failed.command, failed.error!);
    return responses;
  }

  private onResponse(payload: Buffer): void {
    let parsed: { responses?: DynsecResponse[] };
    try {
      parsed = JSON.parse(payload.toString('utf8')) as { responses?: DynsecResponse[] };
    } catch {
      return;
    }
    for (const response of parsed.responses ?? []) {
      const resolve = response.correlationData === undefined ? undefined : this.waiting.get(response.correlationData);
      if (!resolve) continue;
      this.waiting.delete(response.correlationData!);
      resolve(response);
    }
  }
}

const alreadyExists = (response: DynsecResponse): boolean => /already exists/i.test(response.error ?? '');

/** MQTT_PROVISIONING=dynsec. The server's MQTT login needs the plugin's admin ACLs (scripts/mosquitto.mjs sets them up). */
export class DynsecProvisioner implements DeviceProvisioner {
  private readonly client: DynsecClient;

  constructor(
    mqtt: MqttConnection,
    private readonly logger: Logger,
    timeoutMs?: number,
  ) {
    this.client = new DynsecClient(mqtt, timeoutMs);
  }

  async provision(vehicleId: string, password: string): Promise<void> {
    const rolename = vehicleRoleName(vehicleId);
    // Idempotent: a registration retried after a timeout finds role and client already there.
    await this.client.run([{ command: 'createRole', rolename, acls: vehicleRoleAcls(vehicleId) }], alreadyExists);
    const [created] = await this.client.run(
      [{ command: 'createClient', username: vehicleId, password, clientid: vehicleId, roles: [{ rolename, priority: 0 }] }],
      alreadyExists,
    );
    if (created?.error !== undefined) {
      await this.client.run([
        { command: 'setClientPassword', username: vehicleId, password },
        { command: 'setClientId', username: vehicleId, clientid: vehicleId },
        { command: 'addClientRole', username: vehicleId, rolename, priority: 0 },
      ]);
    }
    this.logger.info({ vehicleId }, 'vehicle provisioned on the dynamic-security plugin');
  }

  async rotate(vehicleId: string, password: string): Promise<void> {
    const [found] = await this.client.send([{ command: 'getClient', username: vehicleId }]);
    // Never provisioned (the broker was set up after the vehicle was registered): do it now.
    if (found?.error !== undefined) return this.provision(vehicleId, password);
    // Disabling a client disconnects its sessions (mosquitto 2.0); it is enabled again with the new password.
    await this.client.run([
      { command: 'setClientPassword', username: vehicleId, password },
      { command: 'disableClient', username: vehicleId },
      { command: 'enableClient', username: vehicleId },
    ]);
    this.logger.info({ vehicleId }, 'vehicle password rotated on the dynamic-security plugin');
  }
}
