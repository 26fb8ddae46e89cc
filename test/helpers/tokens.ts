import { signToken, type Role } from '../../actors/contract/tokens.js';

/** Secret of every test app (≥ 16 characters, as config requires). */
export const TEST_JWT_SECRET = 'test-secret-for-unit-tests-only';

export function tokenFor(sub: string, role: Role, options: { ttlSeconds?: number; issuedAtMs?: number; secret?: string } = {}): string {
  return signToken(
    { sub, role, ttlSeconds: options.ttlSeconds ?? 3600, ...(options.issuedAtMs !== undefined && { issuedAtMs: options.issuedAtMs }) },
    options.secret ?? TEST_JWT_SECRET,
  );
}

/** `authorization` header for a caller. */
export const authAs = (sub: string, role: Role): { authorization: string } => ({ authorization: `Bearer ${tokenFor(sub, role)}` });
export const asCustomer = (sub = 'alice'): { authorization: string } => authAs(sub, 'customer');
export const asOperator = (sub = 'ops-1'): { authorization: string } => authAs(sub, 'operator');

/** Issued two hours ago, valid for one. */
export const expiredToken = (sub = 'alice'): string => tokenFor(sub, 'customer', { issuedAtMs: Date.now() - 2 * 3600_000, ttlSeconds: 3600 });
