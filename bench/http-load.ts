/** Microseconds since `started` (a `process.hrtime.bigint()`), for LatencyRecorder. */
export const microsSince = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1000;

export interface JsonResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export async function call(url: string, method: 'GET' | 'POST', token: string, body?: unknown): Promise<JsonResponse> {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Runs `clients` loops of `iteration` until `durationMs` passed; each loop stops at its first false. */
export async function runClients(clients: number, durationMs: number, iteration: (client: number) => Promise<boolean>): Promise<number> {
  const started = Date.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (Date.now() < deadline) {
        if (!(await iteration(client))) return;
      }
    }),
  );
  return (Date.now() - started) / 1000;
}
