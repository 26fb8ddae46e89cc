import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The one convention of every command (`npm run sim|trace|replay|token|bench|chaos|demo`): `--help` (or
 * `-h`) prints the usage on stdout and exits 0; a bad argument prints one line on stderr that names it
 * and where the usage is, and exits 2; never a stack trace. Kept apart from the commands so they answer
 * alike.
 */

/** Exit code of a command given bad arguments (as a bad configuration variable: server/config.ts). */
export const BAD_ARGUMENTS = 2;

/** A bad argument found after parsing (a value out of range, a missing id): `exitBadArgument` says it. */
export class UsageError extends Error {}

/** `sim: --rate must be a number (got "x"); npm run sim -- --help shows the usage` */
export function badArgumentLine(command: string, message: string): string {
  return `${command}: ${message.replace(/\.$/, '')}; npm run ${command} -- --help shows the usage`;
}

export function exitBadArgument(command: string, message: string): never {
  console.error(badArgumentLine(command, message));
  process.exit(BAD_ARGUMENTS);
}

/** `--help` or `-h` before a `--` terminator. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}

/**
 * node:util's parseArgs (strict), with the convention above: the usage on `--help`, one line on an
 * unknown option or a missing value (node's message cut to its first sentence: the rest is advice about
 * `--` that does not apply to these commands).
 */
export function parseCommandLine<T extends ParseArgsConfig>(command: string, usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (wantsHelp(args)) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (error) {
    exitBadArgument(command, firstSentence((error as Error).message));
  }
}

function firstSentence(message: string): string {
  const end = message.search(/\.(\s|$)/);
  return end === -1 ? message : message.slice(0, end);
}
