import * as hdr from 'hdr-histogram-js';

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Latencies in microseconds in an HDR histogram (1 µs … 60 s, 3 significant digits). */
export class Latencies {
  private readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

  record(startedAt: bigint): void {
    this.histogram.recordValue(Math.max(1, Number((process.hrtime.bigint() - startedAt) / 1000n)));
  }

  summary(): LatencySummary {
    const ms = (percentile: number) => Math.round(this.histogram.getValueAtPercentile(percentile) / 10) / 100;
    return { count: this.histogram.totalCount, p50Ms: ms(50), p90Ms: ms(90), p99Ms: ms(99), maxMs: Math.round(this.histogram.maxValue / 10) / 100 };
  }
}

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
