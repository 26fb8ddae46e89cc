import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../actors/contract/tokens.js';
import { signViewerLink } from '../../api/viewer/access.js';
import type { ViewerModel } from '../../api/viewer/model.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The trace viewer (GET /traces/:id/view) in a real headless Chromium against a real fleet: a
 * booking, then an unlock through a virtual device over MQTT, then the page opened from a viewer link.
 * Set TRACE_VIEWER_SCREENSHOT=/tmp/viewer.png to keep a screenshot of the page (never committed).
 */
const CHROMIUM = '/usr/bin/chromium';
const VEHICLE = 'viewer-scooter';

describe('trace viewer page', () => {
  let t: TestFleet;
  let device: VirtualVehicle;
  let browser: Browser;
  let bookingId: string;
  let api: string;

  beforeAll(async () => {
    t = await startTestFleet({}, { listen: true });
    api = t.fleet.url!;
    expect((await t.registerVehicle(VEHICLE)).statusCode).toBe(201);
    device = await VirtualVehicle.start({ id: VEHICLE, url: t.fleet.mqttUrl, protocolVersion: 4, credentials: t.credentials(VEHICLE) });
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${VEHICLE}`, as: 'ops', role: 'operator' })).json().online === true, { what: `${VEHICLE} online` });
    const booked = await t.book('alice', VEHICLE);
    expect(booked.statusCode, booked.body).toBe(201);
    bookingId = booked.json().id as string;
    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'] });
  });

  afterAll(async () => {
    await browser?.close();
    await device?.stop();
    await t?.close();
  });

  const operatorGet = (url: string) => t.request({ method: 'GET', url, as: 'ops', role: 'operator' });

  async function modelOf(id: string): Promise<ViewerModel> {
    const response = await operatorGet(`/traces/${id}/view/data`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as ViewerModel;
  }

  async function openFromLink(id: string): Promise<{ page: Page; errors: string[] }> {
    const linked = await t.request({ method: 'POST', url: `/traces/${id}/view-link`, as: 'ops', role: 'operator' });
    expect(linked.statusCode, linked.body).toBe(200);
    const { path } = linked.json() as { path: string };
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(api + path);
    return { page, errors };
  }

  it('draws every participant and step of a booking, and steps with buttons and arrow keys', async () => {
    const model = await modelOf(bookingId);
    const total = model.steps.length;
    // Booked and unlocked: the API, the booking, the vehicle, the payment, the device over MQTT; no
    // Kafka lane, since this fleet has no Kafka (the public events stay in the journal).
    expect(model.participants.map((participant) => participant.name).sort()).toEqual(['http', `booking/${bookingId}`, `vehicle/${VEHICLE}`, `payment/auth_${bookingId}`, `device/${VEHICLE}`].sort());
    expect(model.publicEvents).toBe('journal');
    expect(model.arrows.map((arrow) => arrow.label)).toEqual(expect.arrayContaining(['MQTT UNLOCK', 'MQTT UNLOCKED']));
    expect(model.arrows.some((arrow) => arrow.kind === 'kafka')).toBe(false);

    const { page, errors } = await openFromLink(bookingId);
    await page.locator('#position').filter({ hasText: `step 1 / ${total}` }).waitFor();
    // The link's token left the address bar as soon as the page had it.
    expect(page.url()).toBe(`${api}/traces/${bookingId}/view`);

    const headers = await page.locator('#diagram .head').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-participant')));
    expect(headers).toEqual(model.participants.map((participant) => participant.name));
    const drawnSteps = await page.locator('#diagram .arrow').evaluateAll((nodes) => [...new Set(nodes.map((node) => node.getAttribute('data-step')))].length);
    expect(drawnSteps).toBe(total);
    expect(await page.locator('#diagram .arrow').count()).toBe(model.arrows.length);

    const shown = async () => ({
      position: await page.locator('#position').textContent(),
      title: await page.locator('#step-title').textContent(),
      state: await page.locator('#state-after').textContent(),
      current: await page.locator('#diagram .arrow.current').first().getAttribute('data-step'),
    });
    const first = await shown();
    expect(first).toMatchObject({ position: `step 1 / ${total}`, title: `1. ${model.steps[0]!.messageType}`, current: '0' });

    await page.click('#next');
    const second = await shown();
    expect(second).toMatchObject({ position: `step 2 / ${total}`, title: `2. ${model.steps[1]!.messageType}`, current: '1' });
    expect(second.state).toBe(JSON.stringify(model.steps[1]!.stateAfter ?? null, null, 2) === 'null' ? '(none)' : JSON.stringify(model.steps[1]!.stateAfter, null, 2));
    expect(second.state).not.toBe(first.state);

    await page.keyboard.press('ArrowRight');
    expect(await shown()).toMatchObject({ position: `step 3 / ${total}`, title: `3. ${model.steps[2]!.messageType}`, current: '2' });
    await page.keyboard.press('ArrowLeft');
    expect(await shown()).toMatchObject({ position: `step 2 / ${total}`, current: '1' });
    await page.click('#back');
    expect(await shown()).toMatchObject({ position: `step 1 / ${total}`, current: '0' });
    expect(await page.locator('#back').isDisabled()).toBe(true);

    // The step that made the vehicle UNLOCKED: its changed fields, its journal events, its replay command.
    const unlockedAt = model.steps.findIndex((step) => step.events.some((event) => event.eventType === 'VehicleUnlocked'));
    expect(unlockedAt).toBeGreaterThan(0);
    for (let step = 0; step < unlockedAt; step += 1) await page.keyboard.press('ArrowRight');
    expect(await page.locator('#position').textContent()).toBe(`step ${unlockedAt + 1} / ${total}`);
    const changed = await page.locator('#changes tbody td.path').allTextContents();
    expect(changed.length).toBeGreaterThan(0);
    expect(changed).toEqual(model.steps[unlockedAt]!.changes.map((change) => change.path));
    expect(await page.locator('#events').textContent()).toContain('VehicleUnlocked');
    expect(await page.locator('#events').textContent()).toContain('public event vehicle.unlocked (GET /events; no Kafka configured)');
    expect(await page.locator('#replay').textContent()).toMatch(new RegExp(`^npm run replay -- vehicle ${VEHICLE} --until \\d+$`));

    if (process.env.TRACE_VIEWER_SCREENSHOT) await page.screenshot({ path: process.env.TRACE_VIEWER_SCREENSHOT, fullPage: false });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('follows a booking that is still moving: ending the ride adds its steps to an open page', async () => {
    const before = await modelOf(bookingId);
    const { page, errors } = await openFromLink(bookingId);
    await page.locator('#position').filter({ hasText: `step 1 / ${before.steps.length}` }).waitFor();
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();

    const ended = await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` });
    expect(ended.statusCode, ended.body).toBe(200);
    const after = await waitFor(async () => {
      const model = await modelOf(bookingId);
      return model.steps.some((step) => step.events.some((event) => event.eventType === 'BookingCompleted')) ? model : null;
    }, { what: 'the end of the ride in the trace' });
    expect(after.steps.length).toBeGreaterThan(before.steps.length);

    // The trace may grow further (the vehicle's own VehicleWasLocked tell lands after the completion).
    await waitFor(async () => {
      const shown = /^step 1 \/ (\d+)$/.exec((await page.locator('#position').textContent()) ?? '');
      return shown !== null && Number(shown[1]) >= after.steps.length;
    }, { what: 'the page to show the new steps' });
    expect(await page.locator('#diagram').textContent()).toContain('COMPLETED');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('at 1280 px, after the whole ride: arrows in the order things happened, relative times, nothing cut or wrapped', async () => {
    const model = await modelOf(bookingId);
    expect(model.steps.some((step) => step.events.some((event) => event.eventType === 'BookingCompleted'))).toBe(true);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const linked = await t.request({ method: 'POST', url: `/traces/${bookingId}/view-link`, as: 'ops', role: 'operator' });
    await page.goto(api + (linked.json() as { path: string }).path);
    await page.locator('#position').filter({ hasText: `step 1 / ${model.steps.length}` }).waitFor();

    // The arrows as drawn, top to bottom, with the message of the step each belongs to.
    const drawn = await page.locator('#diagram .arrow').evaluateAll((nodes) =>
      nodes.map((node) => ({ kind: node.getAttribute('class')!.replace('arrow ', '').replace(' current', ''), step: Number(node.getAttribute('data-step')), label: node.querySelector(':scope > text')?.textContent ?? '', y: Number(node.querySelector('line, path')?.getAttribute('y1') ?? node.querySelector('path')?.getAttribute('d')?.split(' ')[1]) })),
    );
    const ys = drawn.map((arrow) => arrow.y);
    expect(ys).toEqual([...ys].sort((a, b) => a - b));
    const row = (test: (arrow: (typeof drawn)[number]) => boolean, what: string) => {
      const index = drawn.findIndex(test);
      expect(index, what).toBeGreaterThanOrEqual(0);
      return index;
    };
    const messageOf = (arrow: (typeof drawn)[number]) => model.steps[arrow.step]!.messageType;
    const unlockOk = row((arrow) => arrow.kind === 'reply' && messageOf(arrow) === 'UnlockBooking', 'the reply to UnlockBooking');
    expect(drawn[unlockOk]!.label).toBe('ok');
    expect(unlockOk).toBeGreaterThan(row((arrow) => arrow.label === 'MQTT UNLOCKED', 'MQTT UNLOCKED'));
    const completed = row((arrow) => arrow.kind === 'reply' && messageOf(arrow) === 'EndBooking', 'the reply to EndBooking');
    expect(drawn[completed]!.label).toBe('COMPLETED');
    const locked = row((arrow) => arrow.label === 'MQTT LOCKED', 'MQTT LOCKED');
    const capture = row((arrow) => arrow.label === 'Capture', 'Capture');
    expect(completed).toBeGreaterThan(locked);
    expect(completed).toBeGreaterThan(capture);
    expect(capture).toBeGreaterThan(locked);

    // No lane for Kafka, which this fleet does not have; every lane fits in the pane beside the detail.
    const heads = await page.locator('#diagram .head').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-participant')));
    expect(heads).not.toContain('kafka');
    const fit = (await page.evaluate("({ pane: document.getElementById('diagram-pane').clientWidth, svg: Number(document.getElementById('diagram').getAttribute('width')) })")) as { pane: number; svg: number };
    expect(fit.svg).toBeLessThanOrEqual(fit.pane);
    // Column headers on one line each (no `bef/ore`).
    await page.keyboard.press('ArrowRight');
    // A header wraps when its box is taller than one line of its text (offsetHeight vs line-height, padding aside).
    const headers = await page.evaluate(
      "[...document.querySelectorAll('#changes th')].map((node) => ({ text: node.textContent, wraps: node.scrollWidth > node.clientWidth || node.offsetHeight > 1.8 * parseFloat(getComputedStyle(node).lineHeight) }))",
    );
    expect(headers).toEqual([{ text: 'field', wraps: false }, { text: 'before', wraps: false }, { text: 'after', wraps: false }]);
    // Short values (a status such as AVAILABLE) are never broken inside a word: walk the steps and look at every changed cell.
    const brokenWords: string[] = [];
    for (let step = 0; step < model.steps.length; step += 1) {
      const broken = (await page.evaluate(
        // The text's own line boxes (a Range's client rects), not the cell's height: a row is as tall as its tallest cell.
        "[...document.querySelectorAll('#changes td.before, #changes td.after')].filter((node) => { const text = node.textContent ?? ''; const range = document.createRange(); range.selectNodeContents(node); return /^\\S{1,16}$/.test(text) && new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size > 1; }).map((node) => node.textContent)",
      )) as string[];
      brokenWords.push(...broken);
      await page.keyboard.press('ArrowRight');
    }
    expect(brokenWords).toEqual([]);
    for (let step = 0; step < model.steps.length; step += 1) await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowRight');

    // Times relative and readable on the axis; absolute in the step's detail and on hover.
    const axis = await page.locator('#diagram .time > text:first-of-type').allTextContents();
    expect(axis.length).toBe(model.steps.length);
    for (const label of axis) expect(label).toMatch(/^\+(\d+ ms|\d+\.\d+ s|\d+ min \d\d s)$/);
    expect(await page.locator('#diagram .time > title').first().textContent()).toMatch(/\d\d:\d\d:\d\d\.\d{3} \(\d{4}-\d\d-\d\dT/);
    expect(await page.locator('#step-time').textContent()).toMatch(/^\+\S+ (ms|s) after the first step, at \d\d:\d\d:\d\d\.\d{3} \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/);
    expect(await page.locator('#diagram').textContent()).not.toMatch(/\d{13}/);

    if (process.env.TRACE_VIEWER_SCREENSHOT) await page.screenshot({ path: process.env.TRACE_VIEWER_SCREENSHOT.replace(/(\.png)?$/, '-1280.png'), fullPage: false });
    await page.close();
  });

  it('asks for an operator token without a link, and opens with one kept in the tab', async () => {
    const page = await browser.newPage();
    await page.goto(`${api}/traces/${bookingId}/view`);
    await page.locator('#auth').waitFor({ state: 'visible' });
    expect(await page.locator('#main').isHidden()).toBe(true);
    await page.fill('#auth-token', signToken({ sub: 'ops', role: 'operator', ttlSeconds: 60 }, t.config.auth.jwtSecret));
    await page.click('#auth button[type=submit]');
    await page.locator('#position').filter({ hasText: /^step 1 \/ \d+$/ }).waitFor();
    expect(page.url()).not.toContain('token');
    await page.close();
  });

  it('accepts a link only for its own id, only until it expires, and never as an operator token', async () => {
    const secret = t.config.auth.jwtSecret;
    const get = (url: string, token: string) => t.fleet.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    const link = signViewerLink(secret, bookingId, 'ops').token;
    expect((await get(`/traces/${bookingId}/view/data`, link)).statusCode).toBe(200);
    expect((await get(`/traces/bk_s0_000000000000000000000000/view/data`, link)).statusCode).toBe(401);
    expect((await get(`/traces/${bookingId}`, link)).statusCode).toBe(401);
    expect((await get('/events', link)).statusCode).toBe(401);
    const expired = signViewerLink(secret, bookingId, 'ops', 1, Date.now() - 120_000).token;
    const answer = await get(`/traces/${bookingId}/view/data`, expired);
    expect(answer.statusCode).toBe(401);
    expect(answer.json().detail).toContain('expired');
    expect((await get(`/traces/${bookingId}/view/data`, signToken({ sub: 'alice', role: 'customer', ttlSeconds: 60 }, secret))).statusCode).toBe(403);
    expect((await t.fleet.app.inject({ method: 'GET', url: `/traces/${bookingId}/view/data` })).statusCode).toBe(401);
    // Only operators get links.
    expect((await t.request({ method: 'POST', url: `/traces/${bookingId}/view-link` })).statusCode).toBe(403);
    // The page itself holds no data and is public; its script runs under a nonce-only CSP.
    const page = await t.fleet.app.inject({ method: 'GET', url: `/traces/${bookingId}/view` });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'nonce-/);
    expect(page.body).not.toContain(bookingId);
    const openapi = await t.fleet.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(Object.keys(openapi.json().paths)).toEqual(expect.arrayContaining(['/traces/{id}/view', '/traces/{id}/view/data', '/traces/{id}/view/stream', '/traces/{id}/view-link']));
  });
});

describe('trace viewer data from shards on worker threads', () => {
  let t: TestFleet;
  beforeAll(async () => {
    t = await startTestFleet({ FLEET_SHARDS: '2' }, { shardRuntime: 'worker' });
  });
  afterAll(async () => t?.close());

  it('reads the steps and the journal events they persisted across the thread boundary', async () => {
    expect((await t.registerVehicle('viewer-worker-1')).statusCode).toBe(201);
    const booked = await t.book('alice', 'viewer-worker-1');
    expect(booked.statusCode, booked.body).toBe(201);
    const bookingId = booked.json().id as string;
    const model = await waitFor(async () => {
      const response = await t.request({ method: 'GET', url: `/traces/${bookingId}/view/data`, as: 'ops', role: 'operator' });
      return response.statusCode === 200 ? (response.json() as ViewerModel) : null;
    }, { what: 'the booking trace' });
    const confirming = model.steps.find((step) => step.events.some((event) => event.eventType === 'BookingConfirmed'));
    expect(confirming?.to).toBe(`booking/${bookingId}`);
    expect(confirming?.events.find((event) => event.eventType === 'BookingConfirmed')?.topic).toBe('booking.created');
    expect(confirming?.replay?.command).toMatch(new RegExp(`^npm run replay -- booking ${bookingId} --until [1-9]\\d*$`));
    expect(model.participants.map((participant) => participant.name)).toEqual(['http', `booking/${bookingId}`, 'vehicle/viewer-worker-1', `payment/auth_${bookingId}`]);

    // A trace id shows that one request's trace whole.
    const byTrace = await t.request({ method: 'GET', url: `/traces/${confirming!.traceId}/view/data`, as: 'ops', role: 'operator' });
    expect(byTrace.statusCode, byTrace.body).toBe(200);
    expect(byTrace.json()).toMatchObject({ kind: 'trace', traceIds: [confirming!.traceId] });
  });
});
