import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * How nodes of one cluster know each other on their internal routes: `Authorization: Node <token>`,
 * the token an HMAC of the cluster's name under FLEET_JWT_SECRET. Every node derives the same token;
 * a client (who only ever holds JWTs signed with that secret, never the secret) cannot, and a cluster
 * with another name refuses it. The token never leaves the nodes' own requests to each other.
 */
const SCHEME = /^Node[ ]+(\S+)[ ]*$/;

export function nodeToken(jwtSecret: string, clusterName: string): string {
  return createHmac('sha256', jwtSecret).update(`fleetactors node credential v1\n${clusterName}`).digest('base64url');
}

export const nodeAuthorization = (token: string): string => `Node ${token}`;

/** True only for an `Authorization` header carrying exactly this cluster's node token (compared in constant time). */
export function carriesNodeToken(header: string | undefined, token: string): boolean {
  const match = header === undefined ? null : SCHEME.exec(header);
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
