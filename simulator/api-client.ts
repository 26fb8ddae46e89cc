import type { Role } from '../actors/contract/tokens.js';

/** Mints the bearer token of a simulated caller (the CLI signs with the server's secret). */
export type TokenSource = (sub: string, role: Role) => string;

export interface ApiResult {
  readonly status: number;
  /** Parsed JSON body, or null when there was none. */
  readonly body: unknown;
  /** Last segment of a problem+json `type` (`vehicle-unavailable`), null on success. */
  readonly problem: string | null;
  /** The server's trace of a failed call, when the problem names it (look it up with `npm run trace`). */
  readonly traceId: string | null;
  /** Wall time of the exchange, microseconds. */
  readonly latencyUs: number;
}

/** The network failed or the server did not answer in time: not an HTTP answer at all. */
export class ApiUnreachable extends Error {
  override readonly name = 'ApiUnreachable';
}

export interface ApiClientOptions {
  readonly baseUrl: string;
  /** A request that takes longer is aborted and counted as an error (default 30 s). */
  readonly timeoutMs?: number;
}

/** The HTTP API as the simulator's customers and operator see it (docs/contract.md, "HTTP"). */
export class ApiClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async request(method: 'GET' | 'POST', path: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResult> {
    const started = process.hrtime.bigint();
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new ApiUnreachable(`${method} ${path}: ${describeFetchError(error)}`, { cause: error });
    }
    const latencyUs = Number((process.hrtime.bigint() - started) / 1000n);
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    const problem = response.ok ? null : problemSlug(parsed, response.status);
    const traceId = !response.ok && isRecord(parsed) && typeof parsed.traceId === 'string' ? parsed.traceId : null;
    return { status: response.status, body: parsed, problem, traceId, latencyUs };
  }
}

function problemSlug(body: unknown, status: number): string {
  if (isRecord(body) && typeof body.type === 'string') return body.type.slice(body.type.lastIndexOf('/') + 1) || `http-${status}`;
  return `http-${status}`;
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // undici hides the socket error (ECONNREFUSED, ECONNRESET) in `cause`.
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.name === 'TimeoutError' ? 'timed out' : error.message}${cause}`;
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
