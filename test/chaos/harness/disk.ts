import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, rmdirSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A small file system of its own for the run's data folder (registry and shard journals), so that
 * "the disk is full" is real: SQLite gets ENOSPC from the kernel, not a simulated error. A tmpfs with
 * `size=` needs root (the harness says so and skips the fault otherwise); filling it is one file that
 * takes every free byte, freeing it is deleting that file.
 */
export interface SmallDisk {
  readonly dir: string;
  readonly sizeBytes: number;
  /** Takes every free byte; resolves with how many it took. */
  fill(): number;
  free(): void;
  freeBytes(): number;
  dispose(): void;
}

export function canMount(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function mountSmallDisk(dir: string, sizeBytes: number): SmallDisk {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, 'chaos-filler');
  let mounted = true;
  const unmount = (): void => {
    if (!mounted) return;
    mounted = false;
    try {
      execFileSync('umount', ['-l', dir]);
      rmdirSync(dir);
    } catch {
      // already gone
    }
  };
  process.once('exit', unmount);
  return {
    dir,
    sizeBytes,
    fill: () => {
      const fd = openSync(filler, 'a');
      let taken = 0;
      try {
        // Big chunks first, then pages, so that not even one SQLite page is left.
        for (const chunk of [Buffer.alloc(1 << 20), Buffer.alloc(4096), Buffer.alloc(512)]) {
          for (;;) {
            try {
              taken += writeSync(fd, chunk);
            } catch (error) {
              if ((error as { code?: string }).code === 'ENOSPC') break;
              throw error;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
      return taken;
    },
    free: () => rmSync(filler, { force: true }),
    freeBytes: () => {
      const stats = statfsSync(dir);
      return stats.bavail * stats.bsize;
    },
    dispose: unmount,
  };
}
