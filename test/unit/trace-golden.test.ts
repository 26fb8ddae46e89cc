import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { focusOnBooking, renderSequenceDiagram, type TraceStepView } from '../../traces/trace-diagram.js';
import { driveStepper, keysOf, prepareStepper, renderStepScreen, type ScreenSize } from '../../traces/trace-stepper.js';

/**
 * Golden files for what `npm run trace` prints: a fixed trace (a real booking's: book → unlock → end,
 * recorded once from a test fleet) in, the text compared byte for byte with test/golden/*.txt.
 * After an intended change to the rendering, rewrite them and review the diff:
 *
 *     UPDATE_GOLDEN=1 npx vitest run test/unit/trace-golden.test.ts
 */

const GOLDEN = (name: string) => fileURLToPath(new URL(`../golden/${name}`, import.meta.url));
const fixture = JSON.parse(readFileSync(GOLDEN('booking-trace.json'), 'utf8')) as { bookingId: string; steps: TraceStepView[] };
const steps = focusOnBooking(fixture.steps, fixture.bookingId);

function expectGolden(name: string, text: string): void {
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN(name), `${text}\n`);
  expect(`${text}\n`).toBe(readFileSync(GOLDEN(name), 'utf8'));
}

const lineCount = (screen: string) => screen.split('\n').length;
const widest = (screen: string) => Math.max(...screen.split('\n').map((line) => line.length));

describe('golden files', () => {
  it('the sequence diagram of a booking', () => {
    expectGolden('booking-trace.diagram.txt', renderSequenceDiagram(steps));
  });

  it('step 5 of the step mode on a 45-line terminal: the diagram scrolled to it, the fields it changed', () => {
    expectGolden('booking-trace.step-5.txt', renderStepScreen(prepareStepper(steps), { index: 4, full: false, quit: false }, { rows: 45, columns: 120 }));
  });

  it('step 5 with the full state (f) on a small terminal', () => {
    expectGolden('booking-trace.step-5-full.txt', renderStepScreen(prepareStepper(steps), { index: 4, full: true, quit: false }, { rows: 30, columns: 80 }));
  });
});

describe('step mode, driven by keys', () => {
  const stepper = prepareStepper(steps);
  const size: ScreenSize = { rows: 45, columns: 100 };

  it('n/→ forward, b/← back, f toggles the full state, unknown keys do nothing, q quits and ignores the rest', () => {
    const keys = keysOf('n\x1b[Cbxf\x1b[Dfq').concat(['n']);
    expect(keys).toEqual(['n', '\x1b[C', 'b', 'x', 'f', '\x1b[D', 'f', 'q', 'n']);
    const { screens, state } = driveStepper(stepper, keys, size);
    expect(state).toEqual({ index: 0, full: false, quit: true });
    const titles = screens.map((screen) => screen.split('\n')[0]);
    expect(titles.map((title) => /^step (\d+)\/11/.exec(title!)?.[1])).toEqual(['1', '2', '3', '2', '2', '1', '1']);
    // The full state after `f`, changed fields again after the second `f`.
    expect(screens[4]).toContain('state after:');
    expect(screens[4]).not.toContain('changed:');
    expect(screens[6]).toContain('changed:');
  });

  it('every screen fits a 45-line terminal, and the current step is marked in the scrolled diagram', () => {
    const { screens } = driveStepper(stepper, [...'nnnnnnnnnnnnn'], size);
    expect(screens).toHaveLength(11); // stops at the last step
    for (const [index, screen] of screens.entries()) {
      expect(lineCount(screen)).toBeLessThanOrEqual(45);
      expect(widest(screen)).toBeLessThanOrEqual(100);
      const marked = screen.split('\n').filter((line) => line.startsWith('▶ '));
      expect(marked.length, `step ${index + 1}`).toBeGreaterThan(0);
      expect(marked.join('\n')).toContain(`[${index + 1}]`);
    }
    // The last step's arrows are far down the 45-line diagram: it scrolled.
    expect(screens.at(-1)).not.toContain('CreateBooking');
    expect(screens[0]).toContain('CreateBooking');
  });

  it('a tiny terminal still gets its rows, with the cut lines counted', () => {
    const screen = renderStepScreen(stepper, { index: 4, full: true, quit: false }, { rows: 20, columns: 60 });
    expect(lineCount(screen)).toBeLessThanOrEqual(20);
    expect(widest(screen)).toBeLessThanOrEqual(60);
    expect(screen).toMatch(/… \d+ more lines/);
  });
});
