import { Pool } from 'undici';

/**
 * The HTTP client of forwarded shard calls between nodes: one undici pool of keep-alive connections
 * per node. A call is a small JSON POST, and most of a cluster's requests make two of them, so their
 * cost is the client's: the global `fetch` (undici behind WHATWG streams, an AbortSignal and a
 * Request object per call) was 30 % of a node's main thread under the cluster bench's booking load;
 * undici's own `request` skips all three.
 */

/** Connections per peer node: enough for the calls one node has in flight at 50 client connections. */
const CONNECTIONS_PER_NODE = 16;

export interface NodeAnswer {
  readonly status: number;
  /** The body as text: the caller parses it (a non-JSON answer is a failure it names). */
  readonly text: string;
}

/** Why a call got no answer: the peer refused the connection (the call never reached it), or anything else (it may have run). */
export class NodeCallFailed extends Error {
  constructor(
    readonly refused: boolean,
    readonly timedOut: boolean,
    options: { cause: unknown },
  ) {
    super(refused ? 'connection refused' : timedOut ? 'no answer in time' : 'the call failed', options);
    this.name = 'NodeCallFailed';
  }
}

/** By the node's URL as it advertises it: the URL is parsed once, when its pool is made. */
const pools = new Map<string, Pool>();

function poolFor(url: string): Pool {
  let pool = pools.get(url);
  if (pool === undefined) {
    pool = new Pool(new URL(url).origin, { connections: CONNECTIONS_PER_NODE, keepAliveTimeout: 30_000 });
    pools.set(url, pool);
  }
  return pool;
}

/** POSTs `body` as JSON to `path` on the node at `url`; the answer's status and text, or NodeCallFailed within `timeoutMs`. */
export async function postToNode(url: string, path: string, body: string, authorization: string, timeoutMs: number): Promise<NodeAnswer> {
  try {
    const response = await poolFor(url).request({
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', authorization },
      body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    return { status: response.statusCode, text: await response.body.text() };
  } catch (error) {
    throw new NodeCallFailed(codeOf(error) === 'ECONNREFUSED', TIMEOUT_CODES.has(codeOf(error) ?? ''), { cause: error });
  }
}

/** Closes every pool (a node that stops); later calls open new ones. */
export async function closeNodeClients(): Promise<void> {
  const closing = [...pools.values()].map((pool) => pool.close().catch(() => undefined));
  pools.clear();
  await Promise.all(closing);
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}
