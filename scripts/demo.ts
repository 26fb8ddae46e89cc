import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { signToken } from '../actors/contract/tokens.js';
import { MAX_LINK_TTL_MINUTES } from '../api/viewer/access.js';
import { loadConfig } from '../server/config.js';
import { startFleet, type RunningFleet } from '../server/fleet-app.js';
import { createLogger } from '../runtime/ground/logger.js';
import { parseCommandLine } from '../runtime/ground/command-line.js';
import { addressVariables } from './server-env.js';
import { focusOnBooking, renderSequenceDiagram, type TraceStepView } from '../traces/trace-diagram.js';
import { VirtualVehicle } from '../simulator/virtual-vehicle.js';

/**
 * `npm run demo`: the seed's story in one command. Starts the whole system in-process on a throwaway
 * database (never ./data) and the embedded broker on free ports, connects a virtual vehicle, then books,
 * unlocks and ends a ride over real HTTP as a customer would, and shows the booking's trace and the
 * public events, and ends with a link to step through the booking in the browser. In a terminal the
 * server then stays up for that link until Ctrl-C; otherwise (or with --no-wait) it stops everything
 * and exits 0 when every step did what the contract says.
 */
const VEHICLE_ID = 'demo-scooter-1';
const CUSTOMER = 'alice';
const OPERATOR = 'demo-operator';
/** A demo that hangs is worse than one that fails: every step finishes in well under a second. */
const DEMO_TIMEOUT_MS = 60_000;

class DemoFailed extends Error {}

const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const dim = (text: string) => (process.stdout.isTTY ? `\x1b[2m${text}\x1b[0m` : text);
const indent = (text: string, by = '   ') =>
  text
    .split('\n')
    .map((line) => (line ? by + line : line))
    .join('\n');

let stepNumber = 0;
function heading(title: string): void {
  stepNumber += 1;
  console.log(`\n${bold(`${stepNumber}. ${title}`)}`);
}

interface Caller {
  readonly name: 'OPERATOR' | 'CUSTOMER';
  readonly token: string;
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

function curlOf(method: 'GET' | 'POST', path: string, caller: Caller, body?: unknown): string {
  const parts = [`curl -s${method === 'POST' ? ' -X POST' : ''} "$API${path}"`, `-H "Authorization: Bearer $${caller.name}"`];
  if (body !== undefined) parts.push(`-H 'content-type: application/json'`, `-d '${JSON.stringify(body)}'`);
  return `$ ${parts.join(' ')}`;
}

async function call(api: string, method: 'GET' | 'POST', path: string, caller: Caller, body?: unknown, show = true): Promise<Answer> {
  if (show) console.log(indent(dim(curlOf(method, path, caller, body))));
  const response = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${caller.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/**
 * `npm run trace` for this demo's server: it listens on a free port, not the 3000 the command defaults
 * to, so the line names it (and the secret is the one this shell already has).
 */
function traceCommand(bookingId: string, api: string): string {
  return `npm run trace -- ${bookingId} --api ${api}`;
}

function expect(answer: Answer, status: number, what: string): void {
  if (answer.status !== status) throw new DemoFailed(`${what}: expected HTTP ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
}

function show(answer: Answer): void {
  console.log(indent(`→ ${answer.status}\n${JSON.stringify(answer.body, null, 2)}`));
}

async function waitUntilOnline(api: string, caller: Caller): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const vehicle = await call(api, 'GET', `/vehicles/${VEHICLE_ID}`, caller, undefined, false);
    if (vehicle.body.online === true) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new DemoFailed(`the server never saw ${VEHICLE_ID} online`);
}

/** Returns the viewer link to the booking's trace. */
async function demo(fleet: RunningFleet, secret: string, databaseFile: string): Promise<string> {
  const api = fleet.url!;
  const operator: Caller = { name: 'OPERATOR', token: signToken({ sub: OPERATOR, role: 'operator', ttlSeconds: 3600 }, secret) };
  const customer: Caller = { name: 'CUSTOMER', token: signToken({ sub: CUSTOMER, role: 'customer', ttlSeconds: 3600 }, secret) };

  heading('The system is running in this process');
  console.log(indent(`HTTP ${api}   MQTT ${fleet.mqttUrl} (embedded broker)   database ${databaseFile} (temporary)`));
  console.log(indent(dim(`To follow along by hand:  API=${api}`)));
  console.log(indent(dim(`OPERATOR=$(npm run -s token -- --sub ${OPERATOR} --role operator)   CUSTOMER=$(npm run -s token -- --sub ${CUSTOMER} --role customer)`)));

  heading('An operator registers a scooter');
  const registered = await call(api, 'POST', '/vehicles', operator, { id: VEHICLE_ID, type: 'scooter', model: 'Niu KQi3', location: { lat: 52.5219, lon: 13.4132 } });
  expect(registered, 201, 'registering the vehicle');
  console.log(indent(`→ ${registered.status} ${registered.body.id} is ${registered.body.status}`));

  heading('The scooter comes online over MQTT');
  console.log(indent(dim(`$ npm run sim -- vehicle ${VEHICLE_ID} --mqtt-url ${fleet.mqttUrl}     (here: in-process)`)));
  // The registration's answer carries the scooter's MQTT password and command key, shown only this once.
  const credentials = registered.body.credentials as { password: string; commandKey: string };
  console.log(indent(dim(`  with --password ${credentials.password} --command-key ${credentials.commandKey}`)));
  const device = await VirtualVehicle.start({ id: VEHICLE_ID, url: fleet.mqttUrl, protocolVersion: 4, credentials, behaviour: { replyDelayMs: 30 } });
  try {
    await waitUntilOnline(api, customer);
    console.log(indent(`→ subscribed to fleet/vehicles/${VEHICLE_ID}/commands and announced {"online": true}`));

    heading(`${CUSTOMER} books it`);
    const booked = await call(api, 'POST', '/bookings', customer, { vehicleId: VEHICLE_ID, paymentMethod: 'tok_visa' });
    expect(booked, 201, 'booking');
    show(booked);
    if (booked.body.status !== 'CONFIRMED') throw new DemoFailed(`the booking is ${String(booked.body.status)}, not CONFIRMED`);
    const bookingId = String(booked.body.id);

    heading(`${CUSTOMER} unlocks it (the server sends UNLOCK over MQTT and waits for UNLOCKED)`);
    const unlocked = await call(api, 'POST', '/unlock', customer, { bookingId });
    expect(unlocked, 200, 'unlocking');
    show(unlocked);
    if (unlocked.body.status !== 'SUCCESS') throw new DemoFailed(`the unlock answered ${String(unlocked.body.status)}, not SUCCESS`);
    console.log(indent(`the scooter received: ${device.received.map((command) => command.type).join(', ')}; it is ${device.locked ? 'locked' : 'unlocked'}`));

    heading(`${CUSTOMER} ends the ride (LOCK over MQTT, then the payment is captured)`);
    const ended = await call(api, 'POST', `/bookings/${bookingId}/end`, customer);
    expect(ended, 200, 'ending the ride');
    show(ended);
    const charge = ended.body.charge as { amount?: number; currency?: string } | null;
    if (ended.body.status !== 'COMPLETED' || !charge) throw new DemoFailed(`the ride ended as ${String(ended.body.status)} without a charge`);
    console.log(indent(`charged ${((charge.amount ?? 0) / 100).toFixed(2)} ${charge.currency} (authorized ${JSON.stringify(booked.body.authorization)})`));

    heading('What happened inside: the booking\'s trace, one arrow per message between actors');
    const trace = await call(api, 'GET', `/traces/${bookingId}`, operator);
    expect(trace, 200, 'reading the trace');
    console.log(indent(dim(`(the same as: ${traceCommand(bookingId, api)}   — add --step to walk through it with the state at each step)`)));
    console.log(`\n${indent(renderSequenceDiagram(focusOnBooking(trace.body.steps as TraceStepView[], bookingId)), '  ')}`);

    heading('The public events (what Kafka consumers get; GET /events without Kafka)');
    const events = await call(api, 'GET', '/events', operator);
    expect(events, 200, 'reading the events');
    for (const event of events.body.items as Array<Record<string, unknown>>) {
      console.log(indent(`#${String(event.position).padEnd(4)} ${String(event.type).padEnd(18)} key=${String(event.key).padEnd(30)} ${String(event.time)}`));
    }

    heading('Open data: the fleet as GBFS 3.0 (public, what journey planners read)');
    const discovery = await call(api, 'GET', '/gbfs/gbfs.json', operator);
    expect(discovery, 200, 'reading the GBFS auto-discovery');
    const status = await call(api, 'GET', '/gbfs/vehicle_status.json', operator, undefined, false);
    expect(status, 200, 'reading GBFS vehicle_status.json');
    const listed = (status.body.data as { vehicles: unknown[] }).vehicles.length;
    console.log(indent(`feeds: ${bold(`${api}/gbfs/gbfs.json`)}   (${(discovery.body.data as { feeds: unknown[] }).feeds.length} feeds; vehicle_status.json lists ${listed} vehicle(s), each under a random id that changes after every trip — docs/gbfs.md)`));

    heading('Step through it in the browser');
    // The longest a link may live: the demo's server is there only while the demo runs anyway.
    const link = await call(api, 'POST', `/traces/${bookingId}/view-link?ttlMinutes=${MAX_LINK_TTL_MINUTES}`, operator);
    expect(link, 200, 'asking for a viewer link');
    console.log(indent(dim(`(the same as: ${traceCommand(bookingId, api)} --open)`)));
    return String(link.body.url);
  } finally {
    await device.stop();
  }
}

/**
 * A newcomer who runs the demo in a terminal expects the printed link to open, so the server stays
 * until Ctrl-C. Without a terminal (CI, a pipe) nobody can open it: the demo ends as before.
 */
function keepServing(options: { readonly wait?: boolean; readonly 'no-wait'?: boolean }): boolean {
  if (options['no-wait']) return false;
  return options.wait === true || process.stdout.isTTY === true;
}

const USAGE = `usage: npm run demo [-- --wait | --no-wait]

  One booking end to end (register, vehicle online, book, unlock, end, trace, events) on a throwaway
  database and free ports (PORT, HOST, MQTT_PORT and FLEET_JWT_SECRET are honoured when set).
  --wait        keep the server up for the viewer link until Ctrl-C (the default in a terminal)
  --no-wait     stop everything at the end (the default without a terminal)`;

function ctrlC(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function main(): Promise<number> {
  const { values: options } = parseCommandLine('demo', USAGE, { options: { wait: { type: 'boolean' }, 'no-wait': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  const folder = mkdtempSync(join(tmpdir(), 'fleetactors-demo-'));
  const databaseFile = join(folder, 'fleet.db');
  const guard = setTimeout(() => {
    console.error(`demo: still not done after ${DEMO_TIMEOUT_MS / 1000} s, giving up`);
    rmSync(folder, { recursive: true, force: true });
    process.exit(1);
  }, DEMO_TIMEOUT_MS);
  guard.unref();
  console.log(bold('fleetactors demo: one booking end to end (book → unlock → end) on a throwaway database'));
  const config = loadConfig({
    FLEET_DB: databaseFile,
    PORT: '0',
    MQTT_PORT: '0',
    LOG_LEVEL: 'warn',
    PAYMENT_LATENCY_MS: '20',
    // Free ports unless PORT, HOST or MQTT_PORT say otherwise, parsed as `npm start` parses them.
    ...addressVariables(),
    ...(process.env.FLEET_JWT_SECRET ? { FLEET_JWT_SECRET: process.env.FLEET_JWT_SECRET } : {}),
  });
  // Logs go to stderr so that the walk-through on stdout stays readable.
  const logger = createLogger(config.logLevel, pino.destination(2));
  let fleet: RunningFleet | null = null;
  try {
    fleet = await startFleet(config, { logger, listen: true });
    const link = await demo(fleet, config.auth.jwtSecret, databaseFile);
    clearTimeout(guard);
    if (keepServing(options)) {
      console.log(indent(`Open this link to step through the booking (← → keys):\n\n   ${bold(link)}\n`));
      console.log(indent(`The server keeps running for it; the link works for ${MAX_LINK_TTL_MINUTES} minutes. ${bold('Ctrl-C')} stops everything and removes the temporary database.`));
      await ctrlC();
      console.log(`\n${bold('Stopped.')} The temporary database is gone. ${dim('Next: npm start, then npm run sim -- --help')}`);
      return 0;
    }
    console.log(indent(`${link}\n   ${dim('(not a terminal, or --no-wait: the server stops now and the link with it; run npm run demo in a terminal to keep it)')}`));
    console.log(`\n${bold('Done.')} Everything stopped and the temporary database is gone. ${dim('Next: npm start, then npm run sim -- --help')}`);
    return 0;
  } catch (error) {
    console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
    if (!(error instanceof DemoFailed) && error instanceof Error && error.stack) console.error(error.stack);
    return 1;
  } finally {
    await fleet?.close();
    rmSync(folder, { recursive: true, force: true });
  }
}

// Exits explicitly once stdout is flushed: a pool or socket left open must not keep the demo hanging.
main().then((code) => process.stdout.write('', () => process.exit(code)));
