import { exitBadArgument, parseCommandLine } from '../runtime/ground/command-line.js';
import { signToken } from '../actors/contract/tokens.js';
import { serverEnvOrExit } from './server-env.js';

/**
 * `npm run token -- --sub alice --role customer [--ttl 3600]`: prints a bearer token for the API,
 * signed with FLEET_JWT_SECRET or, as the server does without it, the dev secret.
 */
const USAGE = `usage: npm run -s token -- --sub <id> --role customer|operator [--ttl <seconds>]

  --sub ID      who the token speaks for (a customer id, or an operator's name)
  --role ROLE   customer (book, unlock, end) or operator (vehicles, events, traces)
  --ttl S       lifetime in seconds (default 3600)

  Signed with FLEET_JWT_SECRET, or the dev secret as the server uses it without one: the server must
  run with the same secret. -s keeps npm's header out of TOKEN=$(npm run -s token -- …).`;

function main(): number {
  const { values } = parseCommandLine('token', USAGE, {
    options: { sub: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string', default: '3600' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  const { sub, role } = values;
  const ttlSeconds = Number(values.ttl);
  if (!sub) exitBadArgument('token', '--sub is missing (who the token is for, e.g. --sub alice)');
  if (role === undefined) exitBadArgument('token', '--role is missing (customer or operator)');
  if (role !== 'customer' && role !== 'operator') exitBadArgument('token', `--role must be customer or operator (got ${JSON.stringify(role)})`);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) exitBadArgument('token', `--ttl must be a positive whole number of seconds (got ${JSON.stringify(values.ttl)})`);
  const { jwtSecret: secret, usingDevSecret } = serverEnvOrExit();
  if (usingDevSecret) console.error('token: signed with the dev secret (FLEET_JWT_SECRET is not set); only a server on the dev secret accepts it');
  console.log(signToken({ sub, role, ttlSeconds }, secret));
  return 0;
}

process.exitCode = main();
