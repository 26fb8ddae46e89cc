import { createSigner } from 'fast-jwt';
import type { Caller } from './views.js';

/** Bearer tokens (docs/contract.md, "HTTP"): HS256 JWTs with `sub`, `role` and `exp`, minted by the tools and tests, verified by the API. */

export const ALGORITHM = 'HS256';

export type Role = Caller['role'];

export interface TokenRequest {
  readonly sub: string;
  readonly role: Role;
  readonly ttlSeconds: number;
  /** Issue time in epoch ms; now when absent (tests pass a past time to get an expired token). */
  readonly issuedAtMs?: number;
}

/** A bearer token for the API (tests, `npm run token`). */
export function signToken(request: TokenRequest, secret: string): string {
  const sign = createSigner({
    key: secret,
    algorithm: ALGORITHM,
    expiresIn: request.ttlSeconds * 1000,
    ...(request.issuedAtMs !== undefined && { clockTimestamp: request.issuedAtMs }),
  });
  return sign({ sub: request.sub, role: request.role });
}

