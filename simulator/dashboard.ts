import type { LatencySummary } from './report.js';
import type { SimulationView } from './simulation.js';

/**
 * The run as it goes: on a terminal one block redrawn in place every second; anywhere else (a log
 * file, CI) one plain line every few seconds. Always on stderr: stdout is for the report.
 */
export class Dashboard {
  private drawn = 0;
  private previous: { readonly at: number; readonly offered: number; readonly finished: number } | null = null;
  private lastPlain = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly plainEveryMs = 5000,
  ) {}

  update(view: SimulationView): void {
    const lines = dashboardLines(view, this.rates(view));
    if (this.stream.isTTY) {
      // A line wider than the terminal would wrap and the cursor would no longer go back to the block's top.
      const width = Math.max(20, (this.stream.columns || 120) - 1);
      // Up to the block's first line, clear to the end of the screen, draw again.
      this.stream.write(`${this.drawn > 0 ? `\x1b[${this.drawn}A\x1b[J` : ''}${lines.map((line) => line.slice(0, width)).join('\n')}\n`);
      this.drawn = lines.length;
      return;
    }
    if (view.elapsedMs - this.lastPlain < this.plainEveryMs) return;
    this.lastPlain = view.elapsedMs;
    this.stream.write(`${lines.slice(0, 3).map((line) => line.replace(/\s+/g, ' ')).join(' | ')}\n`);
  }

  private rates(view: SimulationView): { offeredPerS: number; finishedPerS: number } {
    const now = { at: view.elapsedMs, offered: view.journeys?.offered ?? 0, finished: view.journeys?.finished ?? 0 };
    const before = this.previous;
    this.previous = now;
    if (!before || now.at <= before.at) return { offeredPerS: 0, finishedPerS: 0 };
    const seconds = (now.at - before.at) / 1000;
    return { offeredPerS: (now.offered - before.offered) / seconds, finishedPerS: (now.finished - before.finished) / seconds };
  }
}

/** The block's lines (pure, for tests): devices, journeys/s, in flight, errors by kind, p50/p99 per step, MQTT round trip. */
export function dashboardLines(view: SimulationView, rates: { offeredPerS: number; finishedPerS: number }): string[] {
  const d = view.devices;
  const j = view.journeys;
  const lines = [`sim ${view.phase.padEnd(11)} ${(view.elapsedMs / 1000).toFixed(1).padStart(7)} s`];
  if (view.phase === 'registering' && view.registered) lines.push(`registering ${view.registered.done}/${view.registered.total}`);
  lines.push(
    d
      ? `devices   ${d.online}/${d.devices} online   ${d.connects} connects (${d.reconnects} again)   ${d.drops} drops   ${d.connectFailures} failed   ${d.refused} refused`
      : 'devices   not started',
  );
  if (!j) return lines;
  lines.push(`journeys  ${rates.offeredPerS.toFixed(1)}/s offered   ${rates.finishedPerS.toFixed(1)}/s done   ${j.inFlight} in flight   (${j.offered} offered, ${j.finished} finished)`);
  const outcomes = Object.entries(j.outcomes);
  lines.push(`outcomes  ${outcomes.length === 0 ? '-' : outcomes.map(([name, count]) => `${name} ${count}`).join('   ')}`);
  const errors = Object.entries(j.errors);
  lines.push(`errors    ${errors.length === 0 ? 'none' : errors.map(([name, count]) => `${name} ×${count}`).join('   ')}`);
  const step = (name: string, summary: LatencySummary) => `${name} ${summary.p50Ms.toFixed(0)}/${summary.p99Ms.toFixed(0)}`;
  lines.push(`p50/p99   ${[step('search', j.steps.search), step('book', j.steps.book), step('unlock', j.steps.unlock), step('end', j.steps.end), step('cancel', j.steps.cancel)].join('   ')} ms`);
  const rtt = view.roundTrip.summary();
  lines.push(`mqtt      PUBLISH→PUBACK p50 ${rtt.p50Ms.toFixed(1)} ms, p99 ${rtt.p99Ms.toFixed(1)} ms (${rtt.count})`);
  return lines;
}
