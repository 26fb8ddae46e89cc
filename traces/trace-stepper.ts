import { describeStateChange, formatDuration, layoutSequenceDiagram, orderSteps, shortName, stateChanges, type DiagramLayout, type TraceStepView } from './trace-diagram.js';

/**
 * `npm run trace -- <id> --step` on a terminal: one screen per step, the diagram scrolled to the
 * step's arrows, the fields it changed (or the whole state), driven by single keys. Pure: keys in,
 * screens out; scripts/trace.ts only puts the terminal in raw mode and writes what this returns.
 */

export type StepperAction = 'next' | 'back' | 'first' | 'last' | 'toggle-full' | 'quit';

export interface StepperState {
  /** Index in `orderSteps` order. */
  readonly index: number;
  /** The whole state after the step instead of the fields it changed. */
  readonly full: boolean;
  readonly quit: boolean;
}

export const initialStepperState: StepperState = { index: 0, full: false, quit: false };

export interface ScreenSize {
  readonly rows: number;
  readonly columns: number;
}

/** What the step mode fits by default: a 45-line terminal. */
export const DEFAULT_SCREEN: ScreenSize = { rows: 45, columns: 120 };

const KEYS: Readonly<Record<string, StepperAction>> = {
  n: 'next',
  ' ': 'next',
  '\r': 'next',
  '\n': 'next',
  '\x1b[C': 'next',
  '\x1bOC': 'next',
  b: 'back',
  p: 'back',
  '\x1b[D': 'back',
  '\x1bOD': 'back',
  g: 'first',
  G: 'last',
  f: 'toggle-full',
  q: 'quit',
  '\x1b': 'quit',
  '\x03': 'quit', // Ctrl-C: raw mode turns it into a key, so it must still end the program
  '\x04': 'quit',
};

/** The keys in one chunk of raw terminal input (a paste, or an arrow key's escape sequence). */
export function keysOf(chunk: string): string[] {
  const keys: string[] = [];
  for (let index = 0; index < chunk.length; ) {
    const escape = chunk[index] === '\x1b' && (chunk[index + 1] === '[' || chunk[index + 1] === 'O') && index + 2 < chunk.length;
    const length = escape ? 3 : 1;
    keys.push(chunk.slice(index, index + length));
    index += length;
  }
  return keys;
}

export const actionOfKey = (key: string): StepperAction | null => KEYS[key] ?? null;

export function stepperReduce(state: StepperState, action: StepperAction, total: number): StepperState {
  const last = Math.max(0, total - 1);
  switch (action) {
    case 'next':
      return { ...state, index: Math.min(last, state.index + 1) };
    case 'back':
      return { ...state, index: Math.max(0, state.index - 1) };
    case 'first':
      return { ...state, index: 0 };
    case 'last':
      return { ...state, index: last };
    case 'toggle-full':
      return { ...state, full: !state.full };
    case 'quit':
      return { ...state, quit: true };
  }
}

/** The steps of a step-through, in order, with their diagram laid out once. */
export interface Stepper {
  readonly steps: readonly TraceStepView[];
  readonly diagram: DiagramLayout;
}

export function prepareStepper(steps: readonly TraceStepView[]): Stepper {
  // The diagram numbers its arrows by the same order, so a line's step index is an index here.
  return { steps: orderSteps(steps), diagram: layoutSequenceDiagram(steps) };
}

const footer = (full: boolean): string => `n/→ next · b/← back · g/G first/last · f ${full ? 'changed fields' : 'full state'} · q quit`;

/** One screen (lines joined with `\n`): never more than `size.rows` lines, none wider than `size.columns`. */
export function renderStepScreen(stepper: Stepper, state: StepperState, size: ScreenSize = DEFAULT_SCREEN): string {
  const { steps, diagram } = stepper;
  const step = steps[state.index];
  const fit = (line: string) => truncate(line, size.columns);
  if (!step) return fit('(no steps recorded)');
  const title = `step ${state.index + 1}/${steps.length}: ${step.messageType} · ${shortName(step.fromActor)} → ${shortName(step.toActor)} · ${formatDuration(step.durationUs)}`;

  // The participants' header stays pinned; the rest scrolls so the step's first arrow sits in the upper third.
  const [header = '', ...body] = diagram.lines;
  const bodySteps = diagram.stepOfLine.slice(1);
  const windowRows = Math.max(4, Math.min(body.length, Math.floor(size.rows * 0.4)));
  const first = Math.max(0, bodySteps.indexOf(state.index));
  const start = Math.max(0, Math.min(first - Math.floor(windowRows / 3), body.length - windowRows));
  const shown = body.slice(start, start + windowRows).map((line, offset) => `${bodySteps[start + offset] === state.index ? '▶ ' : '  '}${line}`);
  const scrolled = `── diagram lines ${start + 1}–${start + shown.length} of ${body.length} `;

  const fixed = [title, `  ${header}`, ...shown, `${scrolled}${'─'.repeat(Math.max(3, size.columns - scrolled.length))}`];
  const detailRows = Math.max(1, size.rows - fixed.length - 1);
  const detail = state.full ? fullDetail(step) : changeDetail(step);
  const visible = detail.length <= detailRows ? detail : [...detail.slice(0, detailRows - 1), `… ${detail.length - detailRows + 1} more lines${state.full ? '' : ' ([f] shows the whole state)'}`];
  return [...fixed, ...visible, footer(state.full)].map(fit).join('\n');
}

/** Default view: where it went, when, what it did to the state, field by field. */
function changeDetail(step: TraceStepView): string[] {
  const lines = [
    `${step.fromActor} → ${step.toActor}`,
    `started ${new Date(step.startedAt).toISOString()}  took ${formatDuration(step.durationUs)}  trace ${step.traceId}`,
    `payload: ${oneLine(step.payload)}`,
    `outcome: ${step.outcome === undefined ? '(none: told, or answered later)' : oneLine(step.outcome)}`,
  ];
  const change = describeStateChange(step.stateBefore, step.stateAfter);
  if (change) lines.push(`state: ${change}`);
  const changes = stateChanges(step.stateBefore, step.stateAfter);
  if (changes.length === 0) lines.push('changed: nothing');
  else {
    lines.push('changed:');
    for (const field of changes) lines.push(`  ${field.path}: ${oneLine(field.before)} → ${oneLine(field.after)}`);
  }
  return lines;
}

/** `f`: the whole state after the step, one line per field (long values are cut at the screen's edge). */
function fullDetail(step: TraceStepView): string[] {
  const state = step.stateAfter;
  const fields =
    typeof state === 'object' && state !== null && !Array.isArray(state) ? Object.entries(state).map(([key, value]) => `  ${key}: ${oneLine(value)}`) : [`  ${oneLine(state)}`];
  return [`${step.fromActor} → ${step.toActor}`, `payload: ${oneLine(step.payload)}`, 'state after:', ...fields];
}

const oneLine = (value: unknown): string => (value === undefined ? '(absent)' : JSON.stringify(value));
const truncate = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`);

/** Feeds `keys` to a step-through and returns the screen after each key that changed something, the first screen first. */
export function driveStepper(stepper: Stepper, keys: readonly string[], size: ScreenSize = DEFAULT_SCREEN): { screens: string[]; state: StepperState } {
  let state = initialStepperState;
  const screens = [renderStepScreen(stepper, state, size)];
  for (const key of keys) {
    const action = actionOfKey(key);
    if (!action) continue;
    const next = stepperReduce(state, action, stepper.steps.length);
    if (next.quit) return { screens, state: next };
    if (next.index !== state.index || next.full !== state.full) screens.push(renderStepScreen(stepper, next, size));
    state = next;
  }
  return { screens, state };
}
