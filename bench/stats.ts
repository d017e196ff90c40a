/**
 * Figures shared by every benchmark row: latency percentiles, and the CPU and memory of a server
 * process read from /proc while a workload runs.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Nearest-rank percentile (p in 0..100) of ascending values; 0 for no values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** p50/p95/p99/max of latencies in milliseconds, rounded to 0.1 ms. */
export function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  const arr = Array.from(sorted);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return { p50: round(percentile(arr, 50)), p95: round(percentile(arr, 95)), p99: round(percentile(arr, 99)), max: round(percentile(arr, 100)) };
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuTicks(statLine: string): number {
  // The command name (field 2) is in parentheses and may contain spaces: count from its end.
  const rest = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  return Number(rest[11]) + Number(rest[12]);
}

/** Resident set size in KiB from the text of /proc/<pid>/status. */
export function rssKib(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) : 0;
}

/** Busy and total jiffies of all CPUs, from the first line of /proc/stat. */
export function hostTicks(procStat: string): { busy: number; total: number } {
  const f = procStat.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: total - idle, total };
}

export interface ProcessUsage {
  /** CPU time of the process over the wall time, in percent of one core (200 = both cores). */
  readonly cpuPercent: number;
  /** Highest resident set size seen, in MiB. */
  readonly peakRssMb: number;
  /** Busy share of the whole machine over the same interval, in percent of all cores. */
  readonly hostBusyPercent: number;
}

export interface ProcessSampler {
  stop(): ProcessUsage;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Samples a process (the server under test) every `everyMs` until stopped. Without a pid (or
 * off Linux) the figures are 0.
 */
export function sampleProcess(pid: number | undefined, everyMs = 100): ProcessSampler {
  const statPath = `/proc/${pid}/stat`;
  const statusPath = `/proc/${pid}/status`;
  const startedAt = performance.now();
  const startStat = pid ? read(statPath) : undefined;
  const startTicks = startStat ? cpuTicks(startStat) : 0;
  const hostStart = read('/proc/stat');
  const host0 = hostStart ? hostTicks(hostStart) : undefined;
  let peak = 0;
  let lastTicks = startTicks;
  const sample = () => {
    if (!pid) return;
    const status = read(statusPath);
    if (status) peak = Math.max(peak, rssKib(status));
    const stat = read(statPath);
    if (stat) lastTicks = cpuTicks(stat);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      sample();
      const seconds = (performance.now() - startedAt) / 1000;
      const hostEnd = read('/proc/stat');
      const host1 = hostEnd ? hostTicks(hostEnd) : undefined;
      const hostBusyPercent = host0 && host1 && host1.total > host0.total ? ((host1.busy - host0.busy) / (host1.total - host0.total)) * 100 : 0;
      return {
        cpuPercent: seconds > 0 ? Math.round(((lastTicks - startTicks) / clockTicks() / seconds) * 1000) / 10 : 0,
        peakRssMb: Math.round(peak / 1024),
        hostBusyPercent: Math.round(hostBusyPercent),
      };
    },
  };
}

/**
 * Waits until a server is idle, at most `maxMs`: a closed loop that stops leaves requests queued
 * in the server, and the next workload must not pay for them. Idle: two 250 ms windows in a row
 * below `idlePercent` of one core and, with `probeUrl`, that URL answering within 100 ms (on a busy
 * machine a starved server can use little CPU and still have a backlog).
 */
export async function settle(pid: number | undefined, probeUrl?: string, idlePercent = 15, maxMs = 20_000): Promise<void> {
  if (!pid) return;
  const end = performance.now() + maxMs;
  const ticks = () => {
    const stat = read(`/proc/${pid}/stat`);
    return stat ? cpuTicks(stat) : undefined;
  };
  const quick = async () => {
    if (!probeUrl) return true;
    const t0 = performance.now();
    try {
      const res = await fetch(probeUrl, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
    } catch {
      return false;
    }
    return performance.now() - t0 < 100;
  };
  let idleWindows = 0;
  while (performance.now() < end) {
    const a = ticks();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 250));
    const b = ticks();
    if (a === undefined || b === undefined) return;
    const percent = ((b - a) / clockTicks() / ((performance.now() - t0) / 1000)) * 100;
    idleWindows = percent < idlePercent ? idleWindows + 1 : 0;
    if (idleWindows >= 2 && (await quick())) return;
  }
}
