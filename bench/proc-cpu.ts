import { readFileSync } from 'node:fs';

/**
 * CPU time of another process, read from outside (Linux `/proc/<pid>/stat`: utime + stime, all its
 * threads), sampled in the background so that it can be cut at a load phase's start and end, which the
 * load worker reports as epoch milliseconds. The figure that moves least on a shared machine: what
 * one request costs the server, not how fast the box happened to be.
 */

/** USER_HZ: the unit of utime/stime. 100 on every Linux Node runs on. */
const CLOCK_TICKS_PER_S = 100;
const SAMPLE_EVERY_MS = 50;

/** CPU milliseconds (user + system) the process has used so far; null once it is gone. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count the fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

export interface CpuSampler {
  /** CPU ms the process used between two epoch-ms instants (linear between the samples around each). */
  between(fromMs: number, toMs: number): number | null;
  stop(): void;
}

export function sampleCpu(pid: number): CpuSampler {
  const samples: Array<{ at: number; cpuMs: number }> = [];
  const take = () => {
    const cpuMs = processCpuMs(pid);
    if (cpuMs !== null) samples.push({ at: Date.now(), cpuMs });
  };
  take();
  const timer = setInterval(take, SAMPLE_EVERY_MS);
  const at = (time: number): number | null => {
    const after = samples.findIndex((sample) => sample.at >= time);
    if (after <= 0) return after === 0 ? samples[0]!.cpuMs : null;
    const [a, b] = [samples[after - 1]!, samples[after]!];
    return a.cpuMs + ((b.cpuMs - a.cpuMs) * (time - a.at)) / Math.max(1, b.at - a.at);
  };
  return {
    between: (fromMs, toMs) => {
      take();
      const [from, to] = [at(fromMs), at(toMs)];
      return from === null || to === null ? null : to - from;
    },
    stop: () => clearInterval(timer),
  };
}
