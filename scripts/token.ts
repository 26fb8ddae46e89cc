import { parseArgs } from 'node:util';
import { signToken } from '../actors/contract/tokens.js';
import { serverEnvOrExit } from './server-env.js';

/**
 * `npm run token -- --sub alice --role customer [--ttl 3600]`: prints a bearer token for the API,
 * signed with FLEET_JWT_SECRET or, as the server does without it, the dev secret.
 */
const usage = 'usage: npm run token -- --sub <id> --role customer|operator [--ttl <seconds>]';

function main(): number {
  let values;
  try {
    ({ values } = parseArgs({
      options: { sub: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string', default: '3600' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const { sub, role } = values;
  const ttlSeconds = Number(values.ttl);
  if (!sub || (role !== 'customer' && role !== 'operator') || !Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    console.error(usage);
    return 2;
  }
  const { jwtSecret: secret, usingDevSecret } = serverEnvOrExit();
  if (usingDevSecret) console.error('token: signed with the dev secret (FLEET_JWT_SECRET is not set); only a server on the dev secret accepts it');
  console.log(signToken({ sub, role, ttlSeconds }, secret));
  return 0;
}

process.exitCode = main();
