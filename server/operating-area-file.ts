import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseOperatingArea, type OperatingArea } from '../actors/contract/operating-area.js';
import { ConfigError } from './config.js';

/**
 * The FLEET_OPERATING_AREA file: read and checked at start-up (a bad file stops the server with a
 * message naming it, exit code 2), and rewritten by `PUT /operating-area` — durably (fsync, rename,
 * fsync of the folder) before the operator's request is answered, since the file is what a restarted
 * server and a restarted shard read.
 */
export function loadOperatingAreaFile(file: string): OperatingArea {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('FLEET_OPERATING_AREA', `names ${file}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError('FLEET_OPERATING_AREA', `names ${file}, which is not JSON: ${(error as Error).message}`);
  }
  const parsed = parseOperatingArea(json);
  if (!parsed.ok) throw new ConfigError('FLEET_OPERATING_AREA', `names ${file}, which is not a valid operating area: ${parsed.errors.join('; ')}`);
  return parsed.area;
}

export function saveOperatingAreaFile(file: string, area: OperatingArea): void {
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    writeSync(fd, `${JSON.stringify(area, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
  const folder = openSync(dirname(file), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}
