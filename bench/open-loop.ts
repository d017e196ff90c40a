/**
 * Open-loop load: requests are started at fixed times (rate per second), whether or not earlier
 * ones have been answered, and each latency is measured from the time the request was due, not
 * from when a free connection let it go. A closed loop (autocannon) slows its own sending when
 * the server stalls and so hides the stall ("coordinated omission"); this does not.
 */
import { Pool } from 'undici';

export interface OpenLoopResult {
  readonly rate: number;
  /** Requests answered per second over the whole run (drain included). */
  readonly achievedPerSecond: number;
  readonly sent: number;
  /** Latencies (ms) of the answered requests, from their due time. */
  readonly latencies: readonly number[];
  /** Non-2xx answers, failed requests, and requests unanswered at the end of the grace period. */
  readonly errors: number;
  readonly seconds: number;
  readonly samples: readonly string[];
}

/**
 * Calls `send(i, due)` for i = 0, 1, … at `start + i / rate` seconds for `durationSeconds`.
 * Requests due while the loop was late are started at once (their latency includes the delay).
 * `send` resolves true for a success.
 */
export async function runOpenLoop(o: { rate: number; durationSeconds: number; graceSeconds?: number; send: (i: number) => Promise<boolean | string> }): Promise<OpenLoopResult> {
  const total = Math.max(1, Math.round(o.rate * o.durationSeconds));
  const intervalMs = 1000 / o.rate;
  const latencies: number[] = [];
  const samples: string[] = [];
  let errors = 0;
  let answered = 0;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  let i = 0;
  while (i < total) {
    const now = performance.now();
    while (i < total && started + i * intervalMs <= now) {
      const due = started + i * intervalMs;
      pending.push(
        o.send(i).then(
          (ok) => {
            answered++;
            if (ok === true) latencies.push(performance.now() - due);
            else {
              errors++;
              if (samples.length < 3) samples.push(typeof ok === 'string' ? ok : 'failed');
            }
          },
          (e: unknown) => {
            answered++;
            errors++;
            if (samples.length < 3) samples.push(String(e));
          },
        ),
      );
      i++;
    }
    if (i < total) await new Promise((r) => setTimeout(r, Math.max(0, started + i * intervalMs - performance.now())));
  }
  // Requests still unanswered after the grace period count as errors (a server that cannot keep
  // up would otherwise keep the run going for as long as its backlog lasts).
  const grace = (o.graceSeconds ?? Math.max(10, o.durationSeconds)) * 1000;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, grace)))]);
  clearTimeout(timer);
  const late = total - answered;
  if (late > 0) {
    errors += late;
    samples.push(`${late} of ${total} requests not answered ${grace / 1000} s after the last was due`);
  }
  const seconds = (performance.now() - started) / 1000;
  return { rate: o.rate, achievedPerSecond: Math.round(latencies.length / seconds), sent: total, latencies, errors, seconds: Math.round(seconds * 100) / 100, samples };
}

export interface HttpRequestSpec {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly body?: string;
}

/**
 * An HTTP sender for runOpenLoop: a pool of `connections` keep-alive connections (requests
 * beyond them wait in the pool's queue, and that wait counts in their latency).
 */
export function httpSender(baseUrl: string, headers: Record<string, string>, connections: number): { send(spec: HttpRequestSpec): Promise<boolean | string>; close(): Promise<void> } {
  const pool = new Pool(baseUrl, { connections, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
  return {
    async send(spec) {
      const res = await pool.request({ method: spec.method, path: spec.path, headers: spec.body ? { ...headers, 'content-type': 'application/fhir+json' } : headers, body: spec.body });
      if (res.statusCode >= 200 && res.statusCode < 300) {
        await res.body.dump();
        return true;
      }
      return `${spec.method} ${spec.path} answered ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`;
    },
    /** Drops requests still in flight. */
    close: () => pool.destroy(),
  };
}
