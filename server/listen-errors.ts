/**
 * A port or address the server cannot listen on, told in terms of the variable that chose it
 * (`PORT=3000 is in use …`) instead of a stack trace: main.ts prints the message and exits 2, as it
 * does for any other configuration the machine refutes.
 */
export class ListenAddressError extends Error {
  override readonly name = 'ListenAddressError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ListenVariables {
  /** The variable that chose the port: `PORT`, `MQTT_PORT`. */
  readonly port: string;
  /** The variable that chose the host, if one did (`HOST`); the embedded broker's is fixed. */
  readonly host?: string;
}

/** Runs `listen`, turning EADDRINUSE, EACCES and EADDRNOTAVAIL into a ListenAddressError. */
export async function listenOn<T>(variables: ListenVariables, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    throw describeListenError(error, variables, host, port) ?? error;
  }
}

export function describeListenError(error: unknown, variables: ListenVariables, host: string, port: number): ListenAddressError | null {
  const code = (error as { code?: unknown } | null)?.code;
  const at = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new ListenAddressError(variables.port, `${variables.port}=${port} is in use: another process listens on ${at}. Stop it, or start with another ${variables.port} (0 picks a free port).`);
    case 'EACCES':
      return new ListenAddressError(variables.port, `${variables.port}=${port} needs privileges this process does not have (ports below 1024). Choose a port above 1023.`);
    case 'EADDRNOTAVAIL':
      return variables.host ? new ListenAddressError(variables.host, `${variables.host}=${host} is not an address of this machine. Use one of its addresses, 127.0.0.1 or 0.0.0.0.`) : null;
    default:
      return null;
  }
}
